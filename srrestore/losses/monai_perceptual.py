"""Perceptual loss on a medical backbone: MONAI's ``PerceptualLoss`` with RadImageNet's ResNet50.

RadImageNet (Mei et al. 2022) trained a ResNet50 on 1.35 million CT, MR and
ultrasound slices; MONAI's :class:`monai.losses.PerceptualLoss` compares two
images through it LPIPS-style (features normalised over channels, squared
differences summed over channels and averaged over space: values in
``[0, 2]`` for non-negative features, another scale than the VGG19 loss's
MSE). This module only builds that MONAI loss, offline-safe, and maps any
band count to it; MONAI is imported when a loss is built, never at import
(the core imports torch and numpy only).

Where the network comes from. MONAI calls ``torch.hub.load(
"Project-MONAI/perceptual-models:main", model="radimagenet_resnet50",
trust_repo=True)``, which *runs that GitHub repository's code* and, through
it, downloads the weights from Hugging Face. So the loss is built only when
asked for, and only from torch hub's local cache (``torch.hub.get_dir()``:
``$TORCH_HOME/hub``, by default ``~/.cache/torch/hub``) holding both
:data:`HUB_REPO_FOLDER` and the weights file (see :func:`cache_status`),
unless ``allow_download`` is given; otherwise nothing is fetched, written or
run and :class:`~srrestore.errors.WeightsUnavailableError` says what is
missing. The weights are read by the hub code with ``torch.load`` (which
defaults to ``weights_only=True`` in torch >= 2.6). MONAI's ``cache_dir`` is
not used: it would change torch hub's folder for the whole process.

Networks MONAI offers and srrestore does not: ``medicalnet_*`` take 3-D
volumes (fine-tuning trains on 2-D patches); ``alex``/``vgg``/``squeeze``
(LPIPS) and ``resnet50`` need torchvision, not a dependency.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from srrestore.errors import (
    ConfigError,
    UnsupportedInputError,
    WeightsUnavailableError,
    check_choice,
    one_line,
)

__all__ = [
    "PERCEPTUAL_NETWORKS",
    "MONAI_NETWORKS",
    "HUB_REPO",
    "HUB_REPO_FOLDER",
    "RADIMAGENET_WEIGHTS",
    "check_perceptual_network",
    "cache_status",
    "MonaiPerceptualLoss",
]

MONAI_NETWORKS = {
    "radimagenet_resnet50": "RadImageNet ResNet50 (MONAI PerceptualLoss, torch hub Project-MONAI/perceptual-models)",
}
"""MONAI networks srrestore builds, with how model cards name them."""

PERCEPTUAL_NETWORKS = ("vgg19", *MONAI_NETWORKS)
"""Perceptual-loss networks: the project's VGG19 (:mod:`srrestore.losses.perceptual`) and the MONAI ones."""

HUB_REPO = "Project-MONAI/perceptual-models:main"
HUB_REPO_FOLDER = "Project-MONAI_perceptual-models_main"
"""``HUB_REPO``'s folder in torch hub's cache (``owner_name_ref``, as ``torch.hub._get_cache_or_reload`` names it)."""

RADIMAGENET_WEIGHTS = "RadImageNet-ResNet50_notop.pth"
WEIGHT_FOLDERS = ("", "monai_checkpoints")
"""Where the hub code looks for the weights in the hub folder: first its top, then where it downloads them."""


def check_perceptual_network(network: str) -> str:
    """Look up a perceptual network name (case-insensitive).

    Raises:
        ConfigError: a 3-D MedicalNet (fine-tuning trains on 2-D patches) or
            an unknown name (with a "did you mean" hint).
    """
    if str(network).strip().lower().startswith("medicalnet_"):
        raise ConfigError(
            f"perceptual network {network!r} is a 3-D MedicalNet and fine-tuning trains on 2-D patches; "
            f"use one of {', '.join(PERCEPTUAL_NETWORKS)}"
        )
    return check_choice("perceptual network", network, PERCEPTUAL_NETWORKS)


def cache_status(hub_dir: str | Path | None = None) -> tuple[Path, list[Path]]:
    """Torch hub's folder and what the RadImageNet loss still misses in it.

    Args:
        hub_dir: torch hub's folder; None: ``torch.hub.get_dir()``.

    Returns:
        ``(hub_dir, missing)``; ``missing`` is empty when the repository
        folder and the weights file (at the top of ``hub_dir`` or in its
        ``monai_checkpoints`` folder) are both there.
    """
    hub = Path(torch.hub.get_dir() if hub_dir is None else hub_dir)
    missing = [] if (hub / HUB_REPO_FOLDER / "hubconf.py").is_file() else [hub / HUB_REPO_FOLDER]
    if not any((hub / folder / RADIMAGENET_WEIGHTS).is_file() for folder in WEIGHT_FOLDERS):
        missing.append(hub / WEIGHT_FOLDERS[-1] / RADIMAGENET_WEIGHTS)
    return hub, missing


def _build(network: str, allow_download: bool) -> nn.Module:
    """MONAI's 2-D ``PerceptualLoss`` for ``network``, from the hub cache unless downloads are allowed."""
    hub, missing = cache_status()
    if missing and not allow_download:
        raise WeightsUnavailableError(
            f"perceptual network {network} is not in the torch hub cache {hub} (missing "
            f"{', '.join(map(str, missing))}); pass --allow-download (allow_download=True) to fetch {HUB_REPO} "
            f"and its weights, or place that hub cache there (set TORCH_HOME to use another folder)"
        )
    from monai.losses.perceptual import PerceptualLoss as MonaiLoss

    try:
        return MonaiLoss(spatial_dims=2, network_type=network)
    except Exception as error:  # the hub repository's code may raise anything
        raise WeightsUnavailableError(
            f"cannot load perceptual network {network} from torch hub ({hub}): {one_line(error)}"
        ) from error


class MonaiPerceptualLoss(nn.Module):
    """MONAI's perceptual loss on a medical backbone, for ``(B, C, H, W)`` batches.

    Intensities: RadImageNet saw display-windowed slices in ``[0, 1]`` (MONAI
    reorders RGB to BGR and subtracts ImageNet's means itself), so inputs in
    srrestore's normalised units are clamped to ``[0, 1]`` first (values
    outside, e.g. CT padding below the window, get no perceptual gradient;
    the pixel loss still sees them). Bands: 3 bands are taken as RGB; any
    other count is compared band by band as grey images (MONAI repeats a
    band to 3 channels) and the loss is the mean over bands.

    The network is frozen and stays in eval mode (its batch norms keep their
    running statistics) when the loss is put in training mode; gradients flow
    to ``prediction`` only. ResNet50 downsamples by 32: patches of 32 pixels
    or more keep a spatial feature map.

    Args:
        network: a name of :data:`MONAI_NETWORKS`.
        allow_download: let torch hub fetch the repository and its weights
            when they are not in its cache.

    Raises:
        ConfigError: ``network`` is not one of :data:`MONAI_NETWORKS`.
        WeightsUnavailableError: not cached (without ``allow_download``), or
            loading through torch hub failed.
    """

    def __init__(self, network: str = "radimagenet_resnet50", *, allow_download: bool = False) -> None:
        super().__init__()
        self.network = check_choice("MONAI perceptual network", network, MONAI_NETWORKS)
        self.loss = _build(self.network, allow_download)
        self.loss.eval()

    def train(self, mode: bool = True) -> "MonaiPerceptualLoss":
        super().train(mode)
        self.loss.eval()
        return self

    @staticmethod
    def _prepare(images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, 3, H, W)`` for RGB, else ``(B * C, 1, H, W)``; clamped to ``[0, 1]``."""
        batch, bands, height, width = images.shape
        if bands != 3:
            images = images.reshape(batch * bands, 1, height, width)
        return images.float().clamp(0.0, 1.0)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of two ``(B, C, H, W)`` batches in normalised units (``[0, 1]``)."""
        if prediction.ndim != 4 or prediction.shape != target.shape:
            raise UnsupportedInputError(
                f"perceptual loss needs two equal (B, C, H, W) shapes, "
                f"got {tuple(prediction.shape)} and {tuple(target.shape)}"
            )
        return self.loss(self._prepare(prediction), self._prepare(target.detach()))
