"""srrestore: restore and super-resolve medical scans and satellite rasters.

Public API::

    import srrestore
    model = srrestore.load_model("default", scale=4)
    big = model.upscale(array)                    # numpy in, numpy out, same dtype
    srrestore.restore("scene.tif", "scene_x4.tif", scale=4)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_model", "restore", "SRModel"]

if TYPE_CHECKING:
    from srrestore.sr_model import SRModel


def __getattr__(name: str) -> Any:
    # Lazy, so `import srrestore` stays cheap and `srrestore.engine` imports no format library.
    if name in ("load_model", "SRModel"):
        from srrestore import sr_model

        return getattr(sr_model, name)
    if name == "restore":
        from srrestore.pipelines.restore import restore

        return restore
    raise AttributeError(f"module 'srrestore' has no attribute {name!r}")
