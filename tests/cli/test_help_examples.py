"""Every ``srrestore`` command's ``--help`` shows examples, and every example runs (issue 15).

The examples are parsed out of ``CliRunner().invoke(cli, [name, "--help"]).output`` (the
group's own help too), so an example added to a docstring is run here without editing this
file. Each runs for real in its own folder (the working directory while it runs) through
:func:`example_commands.run_command_line`: small stand-ins of the files it names, every flag
kept, limits appended so that it runs in seconds on a CPU (see that module). The RadImageNet
example reads the offline stand-in hub of the ``fake_monai_hub`` fixture (tests/conftest.py)
instead of downloading.

Examples that cannot run offline or in seconds are listed in :data:`SKIPPED` with the reason
and skipped explicitly (``pytest -ra`` shows them).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from click.testing import CliRunner

from example_commands import run_command_line
from srrestore.cli.main import cli

# "Examples:", or "Example:" as the group's, models', average's and report's help spell it.
HEADING = re.compile(r"^(\s*)Examples?:\s*$")

# Substring of an example -> why it is not run. Empty: every example runs offline in seconds (../shared data are
# replaced by stand-ins, the RadImageNet example reads the fake hub, torchrun's four processes take ~16 s).
SKIPPED: dict[str, str] = {}

# Substring of an example -> what is wrong with it (strict xfail: fixing it turns the test red until removed).
BROKEN: dict[str, str] = {}


def help_text(name: str) -> str:
    result = CliRunner().invoke(cli, [name, "--help"] if name else ["--help"])
    assert result.exit_code == 0, result.output
    return result.output


def example_block(text: str) -> list[str]:
    """The lines of the ``Example:``/``Examples:`` block (indented under its heading), stripped."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if HEADING.match(line)), None)
    if start is None:
        return []
    indent = len(HEADING.match(lines[start]).group(1))
    block = []
    for line in lines[start + 1 :]:
        if not line.strip() or len(line) - len(line.lstrip()) <= indent:
            break
        block.append(line.strip())
    return block


def parse_examples(text: str) -> list[str]:
    """The command lines of the examples block, continuation lines (``\\``) joined."""
    block = example_block(text)
    examples, current = [], ""
    for line in block:
        current = f"{current} {line}".strip()
        if current.endswith("\\"):
            current = current[:-1].strip()
            continue
        examples.append(current)
        current = ""
    if current:
        examples.append(current)
    return examples


COMMANDS = ["", *sorted(cli.commands)]  # "": the group's own help
EXAMPLES = [(name or "srrestore", index, example) for name in COMMANDS
            for index, example in enumerate(parse_examples(help_text(name)))]


@pytest.mark.parametrize("name", COMMANDS, ids=[name or "srrestore" for name in COMMANDS])
def test_every_help_has_an_examples_block(name):
    text = help_text(name)
    assert any(HEADING.match(line) for line in text.splitlines()), f"no Examples: block in\n{text}"
    examples = parse_examples(text)
    assert examples and all(re.match(r"(srrestore|torchrun) ", e) or e == "srrestore models" for e in examples)


@pytest.mark.parametrize("name", [pytest.param(name, id=name or "srrestore") for name in COMMANDS])
def test_examples_are_one_line_each_or_continued_with_a_backslash(name):
    block = example_block(help_text(name))
    assert block and not any(re.search(r"\S {3,}\S", line) for line in block), block


def test_every_command_has_its_examples_collected():
    assert {name for name, _, _ in EXAMPLES} == {"srrestore", *cli.commands}


def example_case(name: str, index: int, example: str) -> Any:
    flat = " ".join(example.split())
    marks = [pytest.mark.xfail(strict=True, reason=why) for pattern, why in BROKEN.items() if pattern in flat]
    if flat.startswith("torchrun"):
        marks.append(pytest.mark.slow)  # four processes: about 16 s on two cores
    return pytest.param(name, index, example, id=f"{name}-{index}", marks=marks)


@pytest.mark.parametrize(("name", "index", "example"), [example_case(*case) for case in EXAMPLES])
def test_help_example_runs(name, index, example, tmp_path, monkeypatch, request):
    reason = next((why for pattern, why in SKIPPED.items() if pattern in " ".join(example.split())), None)
    if reason is not None:
        pytest.skip(f"{example!r}: {reason}")
    if "radimagenet_resnet50" in example:
        request.getfixturevalue("fake_monai_hub")  # the offline stand-in of the torch hub download
    root = tmp_path / "work"
    root.mkdir()
    monkeypatch.chdir(root)
    run_command_line(example, root)
