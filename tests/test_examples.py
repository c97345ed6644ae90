"""Smoke tests: every example script runs and says what it should."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_upscale_geotiff_example_keeps_bounds(tmp_path):
    output = run_example("upscale_geotiff.py", str(tmp_path / "x4.tif"))
    assert "768x768 px" in output and "same bounds: True, same CRS: True" in output


def test_upscale_array_example_keeps_dtype():
    output = run_example("upscale_array.py")
    assert "(64, 64) uint8 -> (128, 128) uint8" in output
    assert "(1, 64, 64) int16 -> (1, 128, 128) int16" in output
