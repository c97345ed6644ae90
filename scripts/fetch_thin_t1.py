"""Fetch a 1 mm isotropic T1 brain volume for the medical benchmark: the ICBM 152 2009a template.

``../shared/data`` holds no thin-slice volume larger than nibabel's 33 x 41 x 25 T1 at 2 mm: its
other CT and MR volumes were resampled from thicker slices, so their own slices are no sharp truth
for through-plane SR. The ICBM 152 2009a nonlinear symmetric T1 template (McConnell Brain Imaging
Centre; an average of 152 registered T1 scans, 197 x 233 x 189 voxels of 1 mm, uint8) is as sharp
across its slices as within them, and nilearn's wheel ships it. This script downloads that wheel
from the package registry (``pip download nilearn==0.14.1 --no-deps``, the only network access),
checks the wheel's and the volume's SHA-256, and writes the volume. Nothing else of nilearn is
installed or kept. No built-in model is trained on it: the benchmark scores it as a held-out scan.
Run from the project root::

    python scripts/fetch_thin_t1.py runs/data/mni152_t1_1mm.nii.gz
    python benchmarks/medical.py --volumes runs/data/mni152_t1_1mm.nii.gz ...
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from srrestore.models.checkpoint import file_sha256
from srrestore.storage.atomic import atomic_output

REQUIREMENT = "nilearn==0.14.1"
WHEEL = "nilearn-0.14.1-py3-none-any.whl"
WHEEL_SHA256 = "725206484e9fb3f6691f9c2d20204a068759d5072f12055324702ee0cb2bbe8a"
MEMBER = "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
MEMBER_SHA256 = "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6"
DEFAULT_OUT = Path("runs/data/mni152_t1_1mm.nii.gz")


def extract_checked(wheel: Path, out: Path, wheel_sha256: str = WHEEL_SHA256, member: str = MEMBER,
                    member_sha256: str = MEMBER_SHA256) -> Path:
    """Write ``member`` of ``wheel`` to ``out`` if both hashes match; else raise ``ValueError``.

    ``out`` appears whole or not at all, and an existing file is never replaced
    (:func:`srrestore.storage.atomic.atomic_output`).
    """
    if (found := file_sha256(wheel)) != wheel_sha256:
        raise ValueError(f"{wheel.name}: SHA-256 {found}, expected {wheel_sha256}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive, atomic_output(out) as partial:
        partial.write_bytes(archive.read(member))
        if (found := file_sha256(partial)) != member_sha256:
            raise ValueError(f"{member}: SHA-256 {found}, expected {member_sha256}")
    return out


def download_wheel(folder: Path) -> Path:
    """``pip download`` the pinned nilearn wheel (no dependencies) into ``folder``; its path."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "--dest", str(folder), REQUIREMENT], check=True)
    return folder / WHEEL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, nargs="?", default=DEFAULT_OUT, help=f"where to write it ({DEFAULT_OUT})")
    parser.add_argument("--wheel", type=Path, help="a nilearn 0.14.1 wheel already on disk (no download)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="srrestore-fetch-") as folder:
        wheel = args.wheel or download_wheel(Path(folder))
        print(f"wrote {extract_checked(wheel, args.out)}")


if __name__ == "__main__":
    main()
