"""The fenced code blocks of Markdown files, with the ``<!-- not-run: reason -->`` marks above them.

Used by ``tests/test_doc_examples.py``. A block is run when its language is one of
:data:`RUN_LANGUAGES`, unless the line just above its opening fence (blank lines aside) is
``<!-- not-run: why -->``; a mark anywhere else is an error, so a mark cannot outlive its block.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RUN_LANGUAGES", "Block", "command_lines", "markdown_blocks", "stray_marks"]

RUN_LANGUAGES = ("bash", "console", "python")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<language>[\w+-]*)")
MARK = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it starts (1-based line of the opening fence), its language and code."""

    path: Path
    line: int
    language: str
    code: str
    not_run: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES and self.not_run is None


def _mark_above(lines: list[str], index: int) -> str | None:
    """The reason of the not-run mark on the last non-blank line before ``lines[index]``, if any."""
    for previous in reversed(lines[:index]):
        if previous.strip():
            match = MARK.match(previous)
            return match.group("reason") if match else None
    return None


def markdown_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, in order (indented fences, as in lists, included)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, indent = opening.group("fence"), opening.group("indent")
        end = next((k for k in range(index + 1, len(lines))
                    if lines[k].strip().startswith(fence[0] * len(fence)) and not lines[k].strip().strip(fence[0])),
                   None)
        if end is None:
            raise ValueError(f"{path.name}:{index + 1}: the code block opened here is never closed")
        code = "\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines[index + 1:end])
        blocks.append(Block(path, index + 1, opening.group("language").lower(), textwrap.dedent(code) + "\n",
                            _mark_above(lines, index)))
        index = end + 1
    return blocks


def stray_marks(path: Path) -> list[int]:
    """Lines (1-based) of not-run marks that are not just above a code block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    marked = {block.line for block in markdown_blocks(path) if block.not_run is not None}
    strays = []
    for number, line in enumerate(lines, 1):
        if MARK.match(line):
            following = next((k for k in range(number, len(lines)) if lines[k].strip()), None)
            if following is None or following + 1 not in marked:
                strays.append(number)
    return strays


def command_lines(block: Block) -> list[str]:
    """The commands of a ``bash`` or ``console`` block: continuation lines joined, comments dropped,
    ``&&`` chains split; in a ``console`` block only the lines after a ``$`` prompt (continued after ``>``)."""
    commands, current = [], ""
    for raw in block.code.splitlines():
        line = raw.rstrip()
        if block.language == "console":
            if not current and not line.startswith("$ "):
                continue  # the output a console block shows
            line = line[2:] if not current else line.strip().removeprefix(">")  # the prompt, or PS2's
        current = f"{current} {line.strip()}".strip()
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        tokens = shlex.split(current, comments=True)
        current = ""
        while tokens:
            chain_end = tokens.index("&&") if "&&" in tokens else len(tokens)
            if tokens[:chain_end]:
                commands.append(shlex.join(tokens[:chain_end]))
            tokens = tokens[chain_end + 1:]
    return commands
