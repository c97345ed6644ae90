"""The README's results table is copied from the results pages the benchmarks write (issue 20).

``docs/results/*.md`` are written by ``benchmarks/*.py --write-docs``; the README shows a few of
their rows. Every row of the table in the README's ``## Results`` section must be a row of a
results page that section links to, under the same header, so the README cannot keep a figure
that a new run changed.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next level-2 heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def tables(text: str) -> list[list[str]]:
    """Each Markdown table of ``text`` as its lines (header, separator, rows), whitespace normalised."""
    found, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(" ".join(line.split()))
        elif current:
            found.append(current)
            current = []
    return found


def test_every_readme_result_row_is_a_row_of_a_linked_results_page():
    results = section((ROOT / "README.md").read_text(encoding="utf-8"), "Results")
    pages = sorted({ROOT / link for link in re.findall(r"\]\((docs/results/[\w-]+\.md)\)", results)})
    assert pages and all(page.is_file() for page in pages), pages
    readme_tables = tables(results)
    assert len(readme_tables) == 1 and len(readme_tables[0]) > 3, readme_tables
    header, _, *rows = readme_tables[0]
    page_tables = [table for page in pages for table in tables(page.read_text(encoding="utf-8"))]
    source = next((table for table in page_tables if table[0] == header), None)
    assert source is not None, f"no linked results page has a table headed {header!r}"
    assert [row for row in rows if row not in source[2:]] == [], "README rows that the results page does not hold"
