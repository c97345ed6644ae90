"""`srrestore models`: the shipped built-in models and their cards."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from click.testing import CliRunner

from srrestore.cli.main import cli
from srrestore.cli.models import _card_summary
from srrestore.models.registry import WEIGHTS_DIR

ROOT = Path(__file__).resolve().parents[2]

BUILTINS = ({f"srgan-{family}-x{scale}-{phase}" for family in ("rgb", "gray") for scale in (2, 4) for phase in ("psnr", "gan")}
            | {f"srgan-slice-x{factor}-psnr" for factor in (2, 3, 4, 5, 6)})


def test_models_lists_every_builtin_with_steps_time_and_figures():
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert {line.split()[0] for line in lines} == BUILTINS
    for line in lines:
        assert "steps " in line and " min on cpu" in line and "Set5 " in line and "Set14 " in line
        name = line.split()[0]
        last_stage = line.split("last stage ")[1].split(",")[0]
        assert last_stage.startswith(f"configs/builtin/{name}/") and (ROOT / last_stage).is_file()


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
        if 1 in entry["config"]["scale"]:  # a through-plane model: its figures are the validation's (slice profiles)
            assert set(card["validation"]) == {"Set5", "Set14"}
            assert all(s["psnr"] > s["bicubic_psnr"] + 1.0 for s in card["validation"].values())
            continue
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
    card["history"] = [{"steps": {"pretrain": 900, "gan": 100}, "recipe": ["base.toml", "m/01-start.toml"]}]
    assert _card_summary(card).startswith("steps 1000, 10 min on cpu: test, last stage m/01-start.toml, Set5 31.29")


def recipe_commands(name: str) -> tuple[str, list[list[str]]]:
    """``(header, commands)`` printed by ``srrestore models --recipe NAME``, each checked by its command's parser."""
    result = CliRunner().invoke(cli, ["models", "--recipe", name])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    titles = [line for line in lines if line.startswith("# ")][1:]
    commands = [shlex.split(line) for line in lines if not line.startswith("#")]
    assert [title.split(".")[0] for title in titles] == [f"# {n}" for n in range(1, len(commands) + 1)]
    for argv in commands:
        if argv[0] == "srrestore":
            cli.commands[argv[1]].make_context(argv[1], argv[2:])  # options the command knows, values it takes
    return lines[0], commands


def option_values(argv: list[str], option: str) -> list[str]:
    return [argv[index + 1] for index, token in enumerate(argv) if token == option]


def test_recipe_prints_the_stages_in_order_each_from_the_last_ones_model():
    header, commands = recipe_commands("srgan-rgb-x4-psnr")
    trains = [argv for argv in commands if argv[:2] == ["srrestore", "train"]]
    stage_files = [option_values(argv, "--config")[-1] for argv in trains]
    assert [Path(path).name[:3] for path in stage_files] == [f"{n:02d}-" for n in range(1, 11)]
    assert all(path.startswith("configs/builtin/srgan-rgb-x4-psnr/") for path in stage_files)
    for argv in trains:
        configs = option_values(argv, "--config")
        assert configs[0] == "configs/builtin/_shared/srgan-base.toml"
        assert all((ROOT / path).is_file() for path in configs)
        assert argv[2] == "../shared/data/sr/train" and option_values(argv, "--threads") == ["1"]
        assert option_values(argv, "--val-dir") == ["../shared/data/sr/val/Set5", "../shared/data/sr/val/Set14"]
    assert "--init" not in trains[0]
    average = commands.index(next(argv for argv in commands if argv[:2] == ["srrestore", "average"]))
    assert commands[average - 1] is trains[8]  # stage 09, then its weights averaged with its start
    assert commands[average][2:4] == [option_values(trains[8], "--out")[0], option_values(trains[8], "--init")[0]]
    kept = [option_values(argv, "--psnr-out") or option_values(argv, "--out") for argv in trains]
    kept[8] = option_values(commands[average], "--out")
    assert [option_values(argv, "--init") for argv in trains[1:]] == kept[:-1]
    assert header.endswith(f"the model is {kept[-1][0]}") and kept[-1][0].endswith("/10-deeper.safetensors")


def test_recipe_of_a_gan_model_runs_its_psnr_models_stages_then_its_own_with_the_exported_data():
    _, commands = recipe_commands("srgan-gray-x2-gan")
    assert [argv[:2] for argv in commands] == [["srrestore", "train"], ["python", "scripts/gray_training_slices.py"],
                                               ["srrestore", "train"], ["srrestore", "train"]]
    assert (ROOT / commands[1][1]).is_file()
    slices = commands[1][2]
    trains = [commands[0], *commands[2:]]
    assert [option_values(argv, "--config")[-1] for argv in trains] == [
        "configs/builtin/srgan-gray-x2-psnr/01-start-64px.toml", "configs/builtin/srgan-gray-x2-psnr/02-l1-128px.toml",
        "configs/builtin/srgan-gray-x2-gan/03-gan.toml"]
    assert [slices in argv for argv in trains] == [False, True, True]
    assert "configs/builtin/_shared/gan-stage.toml" in option_values(trains[2], "--config")
    assert option_values(trains[2], "--init") == option_values(trains[1], "--out")


def test_recipe_of_an_unknown_model_is_refused_with_a_hint():
    result = CliRunner().invoke(cli, ["models", "--recipe", "srgan-rgb-x4"])
    assert result.exit_code == 1 and "did you mean 'srgan-rgb-x4-" in result.output


def test_a_stage_with_its_own_empty_data_trains_on_its_exported_data_alone():
    _, commands = recipe_commands("srgan-slice-x4-psnr")
    trains = [argv for argv in commands if argv[:2] == ["srrestore", "train"]]
    slices = next(argv[2] for argv in commands if argv[:2] == ["python", "scripts/gray_training_slices.py"])
    last, before = trains[-1], trains[-2]
    assert option_values(last, "--config")[-1] == "configs/builtin/srgan-slice-x4-psnr/05-medical-slices.toml"
    assert last[2:4] == [slices, "--config"]  # the exported slices, no photographs
    assert before[2:4] == ["../shared/data/sr/train", slices]
