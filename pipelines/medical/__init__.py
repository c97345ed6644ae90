"""DICOM series and NIfTI volumes.

- :mod:`.restore`: plan the in-plane and through-plane passes and write the derived output;
- :mod:`.planes`: a through-plane pass averaged over two planes;
- :mod:`.pairs`: scans read for fine-tuning and their in-plane training images;
- :mod:`.initial_model`: the through-plane generator fine-tuning starts from;
- :mod:`.finetune`: adapt a model to the user's scans.
"""

from srrestore.pipelines.medical.restore import plan_passes, restore_dicom, restore_nifti, sidecar_path

__all__ = ["plan_passes", "restore_dicom", "restore_nifti", "sidecar_path"]
