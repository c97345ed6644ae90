"""`srrestore models`: the shipped built-in models and their cards."""

from __future__ import annotations

import json

from click.testing import CliRunner

from srrestore.cli.main import cli
from srrestore.cli.models import _card_summary
from srrestore.models.registry import WEIGHTS_DIR

BUILTINS = {f"srgan-{family}-x{scale}-{phase}" for family in ("rgb", "gray") for scale in (2, 4) for phase in ("psnr", "gan")}


def test_models_lists_every_builtin_with_steps_time_and_figures():
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert {line.split()[0] for line in lines} == BUILTINS
    for line in lines:
        assert "steps " in line and " min on cpu" in line and "Set5 " in line and "Set14 " in line


def test_cards_name_data_hardware_and_license_and_the_weights_stay_small():
    result = CliRunner().invoke(cli, ["models", "--json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert {entry["name"] for entry in entries} == BUILTINS
    for entry in entries:
        card = entry["card"]
        assert {"description", "license", "intended_use", "hardware", "training_seconds", "steps", "data"} <= set(card)
        assert card["data"] and not any("/tmp" in source for source in card["data"])
        assert card["phase"] == entry["phase"]
        benchmark = card["benchmark"]  # benchmarks/quality.py --record-cards
        assert set(benchmark["sets"]) == {"Set5", "Set14"} and benchmark["output_mp_per_s"] > 0
        for scores in benchmark["sets"].values():
            assert scores["psnr"] > 27.0 and 0.0 < scores["detail"] < 1.0  # bicubic x4: 28.43 / 26.09
    assert sum(path.stat().st_size for path in WEIGHTS_DIR.glob("*.safetensors")) < 25e6


def test_the_summary_shows_benchmark_figures_when_the_card_has_them():
    card = {"steps": {"pretrain": 900, "gan": 100}, "training_seconds": 600, "hardware": "cpu: test",
            "validation": {"Set5": {"psnr": 30.0, "bicubic_psnr": 28.0}}}
    assert _card_summary(card) == "steps 1000, 10 min on cpu: test, Set5 30.00 dB (bicubic 28.00)"
    card["benchmark"] = {"sets": {"Set5": {"psnr": 31.29, "ssim": 0.88, "detail": 0.54}}, "output_mp_per_s": 0.91,
                         "output_mp_per_s_compiled": 2.1, "date": "2026-11-27 12:00 UTC"}
    assert _card_summary(card) == ("steps 1000, 10 min on cpu: test, Set5 31.29 dB detail 0.54, "
                                   "0.91 MP/s (2.10 compiled) (benchmark 2026-11-27 12:00 UTC)")
