"""Content losses: VGG19 perceptual loss (SRGAN) and discriminator feature matching.

SRGAN (Ledig et al. 2017) compares images in the feature space ``phi`` of an
ImageNet-trained VGG19 (Simonyan & Zisserman 2015): ``mean((phi(G(lr)) - phi(hr))^2)``.
Its ``phi_5,4`` is "the feature map obtained by the 4th convolution (after
activation) before the 5th max-pooling layer", i.e. ``"relu5_4"`` here, the
default; ESRGAN takes the same layer before its activation, ``"conv5_4"``.
SRGAN also scales the loss by ``1/12.75^2 ~ 0.006`` (the ``gamma`` of
:class:`srrestore.losses.total.LossConfig`).

VGG19 is defined here (torchvision is not a dependency) with torchvision's
layer indices, so torchvision's state dict (``features.0.weight`` ...
``features.34.bias``; classifier keys are ignored) loads unchanged. Weights
come from one explicit source, never a silent fallback:

- ``"imagenet"``: torchvision's file :data:`VGG19_IMAGENET_URL` (548 MB) from
  torch hub's checkpoint folder; downloaded only with ``allow_download=True``,
  otherwise :class:`~srrestore.errors.WeightsUnavailableError` names the
  alternatives.
- a local ``.pth``/``.pt`` (loaded with ``torch.load(weights_only=True)``, which
  refuses pickled code) or ``.safetensors`` file in torchvision's format.
- ``"random"``: a fixed-seed, Kaiming-initialised VGG19, a generic perceptual
  loss that needs no download.

Without weights, discriminator feature matching (:class:`FeatureMatchingLoss`)
is the other alternative.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from srrestore.errors import (
    CheckpointError,
    ConfigError,
    UnsupportedInputError,
    WeightsUnavailableError,
    check_choice,
    one_line,
)

__all__ = [
    "VGG19",
    "VGG19_LAYERS",
    "VGG19_IMAGENET_URL",
    "VGG_WEIGHT_SOURCES",
    "resolve_vgg_weights",
    "load_vgg19",
    "PerceptualLoss",
    "FeatureMatchingLoss",
]

VGG19_IMAGENET_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG_WEIGHT_SOURCES = ("imagenet", "random")
WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".safetensors")
RANDOM_SEED = 0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Convolution widths per block; each block ends with a 2x2 max-pool (torchvision's config "E").
VGG19_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))


def _layer_names() -> tuple[str, ...]:
    """torchvision-style names of the 37 layers: ``convB_I``, ``reluB_I`` per conv, ``poolB`` per block."""
    names: list[str] = []
    for block, widths in enumerate(VGG19_BLOCKS, start=1):
        for conv in range(1, len(widths) + 1):
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
        names.append(f"pool{block}")
    return tuple(names)


VGG19_LAYERS = _layer_names()
"""Names of ``VGG19.features`` in index order: ``conv1_1`` (0), ``relu1_1`` (1) ... ``pool5`` (36)."""


class VGG19(nn.Module):
    """VGG19's convolutional part, laid out like ``torchvision.models.vgg19().features``.

    ``features`` maps ``(B, 3, H, W)`` ImageNet-normalised RGB to
    ``(B, 512, H // 32, W // 32)``; ``features[i]`` is layer ``VGG19_LAYERS[i]``.

    Args:
        device: where to allocate the parameters (``"meta"`` to allocate none).
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for widths in VGG19_BLOCKS:
            for width in widths:
                layers += [nn.Conv2d(in_channels, width, 3, padding=1, device=device), nn.ReLU(inplace=True)]
                in_channels = width
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def resolve_vgg_weights(weights: str | os.PathLike[str]) -> str | Path:
    """Tell a weights source (``"imagenet"``, ``"random"``) from a file path.

    A :class:`os.PathLike`, or a string with a path separator or a
    ``.pth``/``.pt``/``.safetensors`` suffix, is a path.

    Raises:
        ConfigError: anything else that is not a source (with a "did you mean" hint).
    """
    if isinstance(weights, os.PathLike):
        return Path(weights)
    if os.sep in weights or weights.lower().endswith(WEIGHT_FILE_SUFFIXES):
        return Path(weights)
    try:
        return check_choice("VGG19 weights", weights, VGG_WEIGHT_SOURCES)
    except ConfigError as error:
        raise ConfigError(f"{error} or a path to a {'/'.join(WEIGHT_FILE_SUFFIXES)} file") from error


def _read_weight_file(path: Path) -> Mapping[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or, refusing pickled code, ``.pth``/``.pt``."""
    if not path.is_file():
        raise WeightsUnavailableError(
            f"VGG19 weights file not found: {path}; give an existing file, weights='imagenet' or weights='random'"
        )
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"refused unsafe or corrupt VGG19 weights {path}: {one_line(error)}") from error
    except Exception as error:  # safetensors and torch.load raise library-specific types
        raise CheckpointError(f"cannot read VGG19 weights {path}: {one_line(error)}") from error


def _read_imagenet_weights(url: str, model_dir: Path, allow_download: bool) -> Mapping[str, torch.Tensor]:
    """Torchvision's ImageNet state dict from torch hub's cache, downloading it only if allowed."""
    cached = model_dir / os.path.basename(url)
    if not allow_download and not cached.is_file():
        raise WeightsUnavailableError(
            f"ImageNet VGG19 weights are not in the cache {cached}; pass allow_download=True to download {url}, "
            f"a local .pth/.safetensors file as weights, weights='random' (generic perceptual loss) "
            f"or use the content loss 'feature-matching'"
        )
    try:
        return torch.hub.load_state_dict_from_url(
            url, model_dir=str(model_dir), map_location="cpu", check_hash=True, weights_only=True
        )
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"refused unsafe or corrupt VGG19 weights {cached}: {one_line(error)}") from error
    except (OSError, RuntimeError) as error:
        if cached.is_file():
            raise CheckpointError(f"cannot read VGG19 weights {cached}: {one_line(error)}") from error
        raise WeightsUnavailableError(
            f"cannot download VGG19 weights from {url}: {one_line(error)}; give a local .pth/.safetensors file, "
            f"weights='random' or use the content loss 'feature-matching'"
        ) from error


def _vgg_from_state_dict(state: Mapping[str, torch.Tensor], source: str) -> VGG19:
    """Build :class:`VGG19` from a torchvision-format state dict (``classifier.*`` ignored)."""
    if not isinstance(state, Mapping) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise CheckpointError(f"VGG19 weights {source} are not a state dict of tensors")
    features = {key: value.float() for key, value in state.items() if key.startswith("features.")}
    model = VGG19(device="meta")
    try:
        model.load_state_dict(features, strict=True, assign=True)
    except RuntimeError as error:
        raise CheckpointError(
            f"VGG19 weights {source} do not fit torchvision's layout (features.0.weight ...): {one_line(error)}"
        ) from error
    return model


def _random_vgg19() -> VGG19:
    """VGG19 with torchvision's initialisation drawn from a fixed seed (global RNG untouched)."""
    model = VGG19(device="meta").to_empty(device="cpu")
    generator = torch.Generator().manual_seed(RANDOM_SEED)
    for layer in model.features:
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            nn.init.zeros_(layer.bias)
    return model


def load_vgg19(
    weights: str | os.PathLike[str] = "imagenet",
    *,
    allow_download: bool = False,
    model_dir: str | os.PathLike[str] | None = None,
    url: str = VGG19_IMAGENET_URL,
) -> VGG19:
    """A frozen VGG19 (``requires_grad=False``, eval mode) on the CPU.

    Args:
        weights: ``"imagenet"``, ``"random"`` or a path to a torchvision-format
            ``.pth``/``.pt``/``.safetensors`` file (see the module docstring).
        allow_download: for ``"imagenet"``, download ``url`` when not cached.
        model_dir: the cache folder (default: torch hub's ``checkpoints`` folder).
        url: where the ImageNet weights live; the cached file takes its name.

    Raises:
        ConfigError: ``weights`` is neither a source nor a path.
        WeightsUnavailableError: the file is missing, or ImageNet weights are
            not cached and may not (or could not) be downloaded.
        CheckpointError: the file is unsafe (pickled code), corrupt or not VGG19.
    """
    source = resolve_vgg_weights(weights)
    if source == "random":
        model = _random_vgg19()
    elif source == "imagenet":
        cache = Path(model_dir) if model_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
        model = _vgg_from_state_dict(_read_imagenet_weights(url, cache, allow_download), url)
    else:
        model = _vgg_from_state_dict(_read_weight_file(Path(source)), str(source))
    return model.requires_grad_(False).eval()


class PerceptualLoss(nn.Module):
    """SRGAN's content loss ``mean((phi(prediction) - phi(target))^2)``, phi = VGG19 features.

    Inputs are intensities in ``[0, 1]``; they are normalised with ImageNet's
    mean and std before VGG19. Band-to-RGB mapping:

    - 3 bands: taken as RGB.
    - any other count (1, 2, 4..16): every band is replicated to a grey RGB
      image and the loss is the average of the per-band losses (for 1 band this
      is plain grey replication).

    The VGG19 is frozen and stays in eval mode even when the loss is put in
    training mode; gradients flow to ``prediction`` only. Inputs need
    ``H, W >= 2**p`` with ``p`` the number of pools before ``layer`` (16 for
    ``relu5_4``).

    Args:
        layer: a name from :data:`VGG19_LAYERS` (torchvision naming): ``"relu5_4"``
            (SRGAN, default), ``"conv5_4"`` (ESRGAN), ``"relu2_2"`` (SRGAN's VGG22)...
        weights, allow_download, model_dir: see :func:`load_vgg19`.

    Raises:
        ConfigError: unknown ``layer`` or ``weights`` (with a "did you mean" hint).
        WeightsUnavailableError, CheckpointError: see :func:`load_vgg19`.
    """

    def __init__(
        self,
        layer: str = "relu5_4",
        weights: str | os.PathLike[str] = "imagenet",
        *,
        allow_download: bool = False,
        model_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        self.layer = check_choice("VGG19 layer", layer, VGG19_LAYERS)
        vgg = load_vgg19(weights, allow_download=allow_download, model_dir=model_dir)
        self.features = vgg.features[: VGG19_LAYERS.index(self.layer) + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.features.eval()
        return self

    def _phi(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` in ``[0, 1]`` -> features ``(B * n, F, h, w)``, ``n = 1`` for RGB else ``C``."""
        batch, bands, height, width = images.shape
        if bands != 3:
            images = images.reshape(batch * bands, 1, height, width).expand(-1, 3, -1, -1)
        return self.features((images - self.mean) / self.std)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of two ``(B, C, H, W)`` batches in ``[0, 1]``."""
        if prediction.ndim != 4 or prediction.shape != target.shape:
            raise UnsupportedInputError(
                f"perceptual loss needs two equal (B, C, H, W) shapes, "
                f"got {tuple(prediction.shape)} and {tuple(target.shape)}"
            )
        with torch.no_grad():
            target_features = self._phi(target)
        return F.mse_loss(self._phi(prediction), target_features)


class FeatureMatchingLoss(nn.Module):
    """Discriminator feature matching: ``mean_i mean((f_i(prediction) - f_i(target))^2)``.

    ``f_i`` are the activations of :meth:`PatchDiscriminator.features
    <srrestore.models.discriminator.PatchDiscriminator.features>`; every layer
    weighs the same. Needs no pretrained network. Target features are constants.
    """

    def forward(self, fake_features: Sequence[torch.Tensor], real_features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Scalar loss of two equal-length lists of ``(B, F_i, H_i, W_i)`` activations."""
        if not fake_features or len(fake_features) != len(real_features):
            raise UnsupportedInputError(
                f"feature matching needs two equal, non-empty lists of activations, "
                f"got {len(fake_features)} and {len(real_features)}"
            )
        return torch.stack(
            [F.mse_loss(fake, real.detach()) for fake, real in zip(fake_features, real_features)]
        ).mean()
