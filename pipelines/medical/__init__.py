"""DICOM series and NIfTI volumes.

- :mod:`.plan`: the in-plane and through-plane passes and the output's slice grid, each with its origin;
- :mod:`.restore`: run the plan and write the derived output;
- :mod:`.planes`: a through-plane pass averaged over two planes;
- :mod:`.pairs`: scans read for fine-tuning and their in-plane training images;
- :mod:`.initial_model`: the through-plane generator fine-tuning starts from;
- :mod:`.finetune`: adapt a model to the user's scans.
"""

from srrestore.pipelines.medical.plan import plan_volume
from srrestore.pipelines.medical.restore import restore_dicom, restore_nifti, sidecar_path

__all__ = ["plan_volume", "restore_dicom", "restore_nifti", "sidecar_path"]
