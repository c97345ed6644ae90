"""The citation metadata and the changelog agree with the package (issue 20).

``CITATION.cff`` must be Citation File Format 1.2.0 with the fields its schema requires (CI also
validates it against the schema with ``cffconvert --validate``), and name the version and licence
``pyproject.toml`` declares. ``CHANGELOG.md`` follows Keep a Changelog: an ``[Unreleased]``
section, then one per version, newest first, with only the standard kinds of change, and a
section for the version being built.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

import srrestore

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
KINDS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_citation_is_cff_1_2_0_with_the_package_version_and_licence():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0"
    assert {"cff-version", "message", "title", "authors"} <= set(citation)
    assert citation["authors"] and all("name" in a or "family-names" in a for a in citation["authors"])
    assert citation["title"] == PROJECT["name"]
    assert citation["version"] == PROJECT["version"] == srrestore.__version__
    assert citation["license"] == PROJECT["license"]["text"]


def test_changelog_has_unreleased_then_versions_newest_first():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, flags=re.M)
    assert [name for name, _ in releases][0] == "Unreleased"
    versions = [tuple(map(int, name.split("."))) for name, _ in releases[1:]]
    assert versions == sorted(versions, reverse=True) and all(date for _, date in releases[1:])
    assert PROJECT["version"] in {name for name, _ in releases}
    assert len(re.findall(r"^## ", text, flags=re.M)) == len(releases), "a level-2 heading that is not a release"
    assert set(re.findall(r"^### (.+)$", text, flags=re.M)) <= KINDS
