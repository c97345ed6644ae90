"""MkDocs hook: show mkdocstrings the package as it is installed, ``srrestore.domains`` and ``.pipelines`` included.

``pyproject.toml`` installs two folders of the repository under the package
(``[tool.setuptools.package-dir]``: ``domains/`` as ``srrestore.domains``, ``pipelines/`` as
``srrestore.pipelines``). mkdocstrings reads sources from folders, where ``srrestore/`` alone holds
neither, so before each build this hook lays out :data:`LAYOUT`: a ``srrestore`` folder of
symbolic links to the entries of ``srrestore/`` and to each mapped folder, in the place the
mapping names. ``mkdocs.yml`` points mkdocstrings at it (``paths``). The mapping is read from
``pyproject.toml``, never repeated here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = ROOT / "build" / "api-layout"
PACKAGE = "srrestore"


def package_dirs() -> dict[str, str]:
    """``{"srrestore.domains": "domains", ...}``: the sub-packages installed from other folders."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return settings["tool"]["setuptools"].get("package-dir", {})


def lay_out(target: Path = LAYOUT) -> Path:
    """Build ``target/srrestore``: links to ``srrestore/``'s entries and to each mapped sub-package."""
    shutil.rmtree(target, ignore_errors=True)
    package = target / PACKAGE
    package.mkdir(parents=True)
    for entry in (ROOT / PACKAGE).iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in package_dirs().items():
        parts = name.split(".")
        if parts[0] != PACKAGE or len(parts) != 2:
            raise ValueError(f"pyproject.toml maps {name!r}: the layout knows {PACKAGE}.<name> only")
        (package / parts[1]).symlink_to(ROOT / folder, target_is_directory=True)
    return target


def on_startup(*, command: str, dirty: bool) -> None:
    """Lay the package out before mkdocstrings reads it."""
    lay_out()
