"""Outputs never replace anything but themselves: folders, races, inputs, stale temporaries, disk errors."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from srrestore.storage.atomic import OUTPUT_MARKER, atomic_output, check_output_path
from srrestore.storage.scratch import allocate_array, remove_stale, scratch_folder, temporary_name
from srrestore.errors import OutputExistsError, OutputWriteError


def _write_folder(target, overwrite=False, name="new.dcm", **kwargs):
    with atomic_output(target, overwrite=overwrite, directory=True, **kwargs) as temporary:
        (temporary / name).write_bytes(b"new")


def test_folder_output_gets_a_marker_and_replaces_only_its_own_kind(tmp_path):
    target = tmp_path / "series"
    target.mkdir()
    (target / "old.dcm").write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        _write_folder(target)
    with pytest.raises(OutputWriteError, match="not written by srrestore"):
        _write_folder(target, overwrite=True)  # a folder of the user's: never replaced
    assert [p.name for p in target.iterdir()] == ["old.dcm"]
    (target / "old.dcm").unlink()
    _write_folder(target)  # an empty folder holds nothing to lose
    assert sorted(p.name for p in target.iterdir()) == [OUTPUT_MARKER, "new.dcm"]
    _write_folder(target, overwrite=True, name="newer.dcm")  # a previous output: replaced
    assert sorted(p.name for p in target.iterdir()) == [OUTPUT_MARKER, "newer.dcm"]
    assert [p.name for p in tmp_path.iterdir()] == ["series"]


def test_folder_recognised_by_its_format_provenance(tmp_path):
    target = tmp_path / "series"
    target.mkdir()
    (target / "slice.dcm").write_bytes(b"ours")
    _write_folder(target, overwrite=True, recognise=lambda folder: (folder / "slice.dcm").read_bytes() == b"ours")
    assert [p.name for p in target.iterdir()] == ["new.dcm"]  # no marker: the format tells


@pytest.mark.parametrize("where", ["parent", "grandparent"])
def test_output_holding_the_input_is_refused_even_with_overwrite(tmp_path, where):
    study = tmp_path / "study"
    source = study / "series" / "slice.dcm"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"input")
    (study / OUTPUT_MARKER).write_text("{}")  # even a folder that looks like an output
    target = source.parent if where == "parent" else study
    with pytest.raises(OutputWriteError, match="holds the input"):
        _write_folder(target, overwrite=True, inputs=[source])
    assert source.read_bytes() == b"input"


def test_output_inside_the_input_folder_is_refused(tmp_path):
    series = tmp_path / "series"
    series.mkdir()
    with pytest.raises(OutputWriteError, match="inside the input folder"):
        check_output_path(series / "sr", False, [series], directory=True)


def test_file_and_folder_never_replace_each_other(tmp_path):
    folder, file = tmp_path / "out.tif", tmp_path / "out_dcm"
    folder.mkdir()
    file.write_bytes(b"user")
    with pytest.raises(OutputWriteError, match="is a folder"):
        check_output_path(folder, True)
    with pytest.raises(OutputWriteError, match="not a folder"):
        check_output_path(file, True, directory=True)


@pytest.mark.parametrize("directory", [False, True])
def test_second_writer_of_the_same_output_fails_and_keeps_the_first(tmp_path, directory):
    """The race the check alone cannot close: another run creates the output while this one writes."""
    target = tmp_path / ("series" if directory else "out.tif")
    with pytest.raises(OutputExistsError, match="created by someone else"):
        with atomic_output(target, directory=directory) as temporary:
            if directory:
                (temporary / "mine.dcm").write_bytes(b"second")
                target.mkdir()
                (target / "theirs.dcm").write_bytes(b"first")
            else:
                temporary.write_bytes(b"second")
                target.write_bytes(b"first")
    kept = (target / "theirs.dcm") if directory else target
    assert kept.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_disk_errors_become_one_output_error_and_leave_nothing(tmp_path):
    target = tmp_path / "out.nii"
    with pytest.raises(OutputWriteError, match="No space left on device"):
        with atomic_output(target) as temporary:
            temporary.write_bytes(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    mine = tmp_path / temporary_name("out.tif", ".tif")
    stale_file = tmp_path / mine.name.replace(f"-{os.getpid()}-", f"-{dead_pid}-")
    stale_folder = tmp_path / temporary_name("scratch").replace(f"-{os.getpid()}-", f"-{dead_pid}-")
    foreign = tmp_path / mine.name.replace(f"-{os.getpid()}-", f"-{dead_pid}-").replace(".srrestore-", ".srrestore-otherhost")
    user = tmp_path / ".out.tif.tmp-12345678.tif"  # not ours: never touched
    for path in (mine, stale_file, foreign, user):
        path.write_bytes(b"x")
    stale_folder.mkdir()
    (stale_folder / "volume.dat").write_bytes(b"x")
    removed = remove_stale(tmp_path)
    assert sorted(removed) == sorted([stale_file, stale_folder])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (mine, foreign, user))


def test_scratch_folder_is_removed_whatever_the_exit(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with scratch_folder(tmp_path) as folder:
            (folder / "a.dat").write_bytes(b"x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_allocate_array_reserves_its_blocks(tmp_path):
    array = allocate_array(tmp_path / "a.dat", "float32", (2, 64, 64))
    assert array.shape == (2, 64, 64) and float(array.sum()) == 0.0
    assert os.stat(tmp_path / "a.dat").st_blocks * 512 >= 2 * 64 * 64 * 4  # not a sparse file
