"""Medical volumes: DICOM series (pydicom) and NIfTI (nibabel), with their geometry and intensity rules.

- :mod:`.geometry`: voxel-centre affines and the cell-centred upscale (invariants 0, D3).
- :mod:`.intensity`: CT Hounsfield and MR foreground-percentile normalisation (I1-I3).
- :mod:`.dicom_series`: read, sort and check a series into a ``(D, H, W)`` volume (D1-D3, D11).
- :mod:`.dicom_writer`: write the derived series (D4-D11).
- :mod:`.nifti`: read, derive the header of and write NIfTI files (N1-N5).
"""
