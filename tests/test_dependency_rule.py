"""The core (models, losses, training, engine) imports no format library."""

from __future__ import annotations

import subprocess
import sys


def test_core_imports_no_format_library():
    code = (
        "import sys, srrestore.engine, srrestore.models.sr_model, srrestore.losses, srrestore.training;"
        "print(','.join(m for m in ('rasterio', 'pydicom', 'nibabel', 'xarray', 'monai') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_domains_and_pipelines_live_in_the_srrestore_namespace():
    import srrestore.domains.image
    import srrestore.pipelines.restore

    assert srrestore.domains.image.__name__ == "srrestore.domains.image"
    assert "domains" not in sys.modules and "pipelines" not in sys.modules
