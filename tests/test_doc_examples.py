"""Every command and code example of the README and ``docs/`` runs, so none can rot (issue 20).

Each Markdown file's ``bash``, ``console`` and ``python`` blocks (:mod:`doc_blocks`) run in order,
in one temporary folder per file that links the repository's ``examples/`` and ``tests/fixtures/``,
so examples name them as a user does from a checkout's root; a later block may use what an earlier
one wrote. Commands:

- ``srrestore ...`` (and ``torchrun ... -m srrestore ...``) run through
  :func:`example_commands.run_command_line`, as the ``--help`` examples do: real files where they
  exist, small stand-ins for names that are only illustrations (``scene.tif``, ``photos/``),
  tiny models unless the example names one, and step limits, so the whole test takes seconds;
- ``python examples/NAME.py ...`` runs the script;
- anything else fails the test: mark its block ``<!-- not-run: reason -->`` or teach this file.

``python`` blocks run with the real built-in models, sharing one namespace per file. Blocks marked
not-run are each reported as a skip with their reason (``pytest -ra`` lists them), and a mark that is
not just above a block fails, so nothing is skipped silently.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from doc_blocks import RUN_LANGUAGES, Block, command_lines, markdown_blocks, stray_marks
from example_commands import ROOT, run_command_line

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINKED = ("examples", "tests/fixtures")  # repository folders the examples name from the checkout's root


def blocks() -> list[Block]:
    return [block for path in DOCUMENTS for block in markdown_blocks(path)]


def page_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


RUN_PAGES = [path for path in DOCUMENTS if any(block.runs for block in markdown_blocks(path))]
NOT_RUN = [block for block in blocks() if block.language in RUN_LANGUAGES and block.not_run is not None]


def link_repository_folders(root: Path) -> None:
    for relative in LINKED:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).symlink_to(ROOT / relative, target_is_directory=True)


def run_command(command: str, root: Path, block: Block) -> None:
    """One command of a shell block (see the module docstring for what runs how)."""
    tokens = shlex.split(command)
    if tokens[:3] == ["python", "-m", "srrestore"]:
        command = shlex.join(["srrestore", *tokens[3:]])
    if tokens[0] in ("srrestore", "torchrun") or tokens[:3] == ["python", "-m", "srrestore"]:
        run_command_line(command, root)
        return
    if tokens[0] == "python" and len(tokens) > 1 and tokens[1].startswith("examples/"):
        result = subprocess.run([sys.executable, *tokens[1:]], cwd=root, capture_output=True, text=True,
                                timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, f"{block.where}: {command}\n{result.stdout}\n{result.stderr[-4000:]}"
        return
    raise AssertionError(f"{block.where}: {command!r} is not a command this test runs: mark its block "
                         "<!-- not-run: reason --> or teach tests/test_doc_examples.py to run it")


def run_block(block: Block, root: Path, namespace: dict[str, object]) -> None:
    if block.language == "python":
        exec(compile(block.code, f"{block.path}:{block.line}", "exec"), namespace)  # noqa: S102 - the docs' own code
        return
    commands = command_lines(block)
    assert commands, f"{block.where}: a {block.language} block without a command"
    for command in commands:
        run_command(command, root, block)


@pytest.mark.parametrize("path", RUN_PAGES, ids=page_id)
@pytest.mark.usefixtures("dask_clients")  # the satellite guide's restore on a local Dask cluster keeps a client
def test_every_example_of_the_page_runs(path, tmp_path, monkeypatch):
    root = tmp_path / "work"
    root.mkdir()
    link_repository_folders(root)
    monkeypatch.chdir(root)
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    for block in markdown_blocks(path):
        if block.runs:
            run_block(block, root, namespace)


@pytest.mark.parametrize("block", NOT_RUN, ids=[block.where for block in NOT_RUN])
def test_not_run_blocks_are_reported_with_their_reason(block):
    assert block.not_run, f"{block.where}: a not-run mark needs a reason"
    pytest.skip(f"{block.where} not run: {block.not_run}")


@pytest.mark.parametrize("path", DOCUMENTS, ids=page_id)
def test_not_run_marks_sit_just_above_a_block(path):
    assert stray_marks(path) == [], f"{page_id(path)}: not-run marks with no code block under them"


def test_the_pages_hold_examples_that_run():
    runnable = [block for block in blocks() if block.runs]
    assert len(runnable) > 2 * len(NOT_RUN), (len(runnable), len(NOT_RUN))
    assert {block.language for block in runnable} >= {"bash", "python"}


def test_blocks_their_marks_and_commands_are_parsed(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("\n".join([
        "text", "<!-- not-run: needs a cluster -->", "", "```bash", "dask scheduler &", "```",
        "- a list item:", "", "  ```console", "  $ srrestore restore a.png \\", "  >   b.png --scale 2  # x2",
        "  wrote b.png", "  $ srrestore models && srrestore --help", "  ```",
        "```python", "print(1)", "```", "```toml", "a = 1", "```", "<!-- not-run: stray -->", "after"]) + "\n")
    found = markdown_blocks(page)
    assert [(block.line, block.language, block.not_run, block.runs) for block in found] == [
        (4, "bash", "needs a cluster", False), (9, "console", None, True), (15, "python", None, True),
        (18, "toml", None, False)]
    assert command_lines(found[1]) == ["srrestore restore a.png b.png --scale 2", "srrestore models",
                                       "srrestore --help"]
    assert found[2].code == "print(1)\n"
    assert stray_marks(page) == [21]
