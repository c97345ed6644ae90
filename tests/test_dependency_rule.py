"""The layering of the house: no module imports one above it, and the core imports no format library.

Layers, lowest first (a module may import its own layer and those below):

0. ``srrestore.errors`` and the package's face ``srrestore/__init__.py`` (its version);
1. ``srrestore.storage`` (atomic outputs, scratch) and ``srrestore.metrics``;
2. ``srrestore.models`` (architectures, checkpoints, registry);
3. ``srrestore.engine`` (tiled inference) and ``srrestore.losses``;
4. ``srrestore.sr_model`` (a model ready for data, above the engine), ``srrestore.training`` and
   ``srrestore.recipes`` (the built-in models' recipe tree, read with the training recipes);
5. ``srrestore.domains`` (formats);
6. ``srrestore.pipelines`` (connect formats, models and the engine);
7. ``srrestore.cli`` and ``python -m srrestore``.

The one exception is the package's face, whose lazy ``srrestore.load_model`` and
``srrestore.restore`` reach up so that ``import srrestore`` stays cheap. Besides
torch and numpy, the core (layers 0-4) uses scipy (nodata fill, filters),
safetensors (weights) and resize-right (MATLAB-compatible bicubic); it never
imports a format library (rasterio, pydicom, nibabel, xarray, monai).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {
    "srrestore.errors": 0, "srrestore": 0,
    "srrestore.storage": 1, "srrestore.metrics": 1,
    "srrestore.models": 2,
    "srrestore.engine": 3, "srrestore.losses": 3,
    "srrestore.sr_model": 4, "srrestore.training": 4, "srrestore.recipes": 4,
    "srrestore.domains": 5,
    "srrestore.pipelines": 6,
    "srrestore.cli": 7, "srrestore.__main__": 7,
}
FOLDERS = {"srrestore": "srrestore", "domains": "srrestore.domains", "pipelines": "srrestore.pipelines"}


def layer(module: str) -> int:
    """The layer of a module: that of its longest listed prefix."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in LAYERS:
            return LAYERS[".".join(parts[:end])]
    raise KeyError(f"{module} is in no layer: add it to LAYERS")


def modules() -> list[tuple[str, Path]]:
    found = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT / folder).with_suffix("")
            parts = [part for part in relative.parts if part != "__init__"]
            found.append((".".join([package, *parts]), path))
    return found


def imported(path: Path, module: str) -> set[str]:
    """Every srrestore module ``path`` imports, at the top or inside functions."""
    names = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names.update(f"{base}.{alias.name}" if base == "srrestore" else base for alias in node.names)
    return {name for name in names if name == "srrestore" or name.startswith("srrestore.")}


@pytest.mark.parametrize(("module", "path"), modules(), ids=[module for module, _ in modules()])
def test_no_module_imports_one_above_it(module, path):
    if module == "srrestore":
        return  # the package's face: lazy attributes reach up on purpose (see the module docstring)
    above = sorted(name for name in imported(path, module) if layer(name) > layer(module))
    assert not above, f"{module} (layer {layer(module)}) imports {above}"


def test_core_imports_no_format_library():
    code = (
        "import sys, srrestore.engine, srrestore.sr_model, srrestore.losses, srrestore.training, srrestore.storage;"
        "print(','.join(m for m in ('rasterio', 'pydicom', 'nibabel', 'xarray', 'monai') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_an_image_restore_imports_no_other_domains_library():
    # Sniffing asks every domain; the GeoTIFF sniffer imports rasterio (0.3 s) for a TIFF only.
    png = Path(__file__).resolve().parents[1] / "examples" / "data" / "landsat_rgb.png"
    code = (
        "import sys; from pathlib import Path; import srrestore.pipelines.image.restore;"
        "from srrestore.pipelines.restore import detect_format;"
        f"kind = detect_format(Path({str(png)!r}));"
        "print(kind, ','.join(m for m in ('rasterio', 'pydicom', 'nibabel', 'xarray', 'monai') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == ["image"]


def test_domains_and_pipelines_live_in_the_srrestore_namespace():
    import srrestore.domains.image
    import srrestore.pipelines.restore

    assert srrestore.domains.image.__name__ == "srrestore.domains.image"
    assert "domains" not in sys.modules and "pipelines" not in sys.modules
