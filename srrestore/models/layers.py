"""Building blocks of the SR-GAN generator. Every block is local: its output at
a pixel depends on a bounded neighbourhood only (no global pooling, no
whole-image attention), so the generator's receptive field is finite.

Each block documents ``reach``: how many pixels per side it adds to the
receptive field. Tensors are ``(B, C, H, W)``.

Reduced precision: under bf16/fp16 autocast the convolutions run in reduced
precision, but the box sums and means of :func:`local_mean` and the whole of
:class:`NeighbourhoodAttention` (dot products, softmax, the weighted sum over
the neighbours) run in float32 (float64 stays float64) and are cast back to
the input's dtype at the end. bf16 holds integers exactly only up to 256 and
keeps 8 significant bits, so pixel indices, sums of many terms and softmax
inputs would be wrong there.
"""

from __future__ import annotations

from typing import ContextManager

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "LocalChannelAttention",
    "ResidualAttentionBlock",
    "NeighbourhoodAttention",
    "LocalTransformerBlock",
    "ResidualGroup",
    "PixelShuffleND",
    "PointwiseConv",
    "memory_format_of",
]


class LocalChannelAttention(nn.Module):
    """Channel attention from a *local* average (RCAN's CA with a bounded window).

    The channel descriptor at each pixel is the mean over a ``window x window``
    neighbourhood instead of the whole image, so the block is tileable.
    reach = ``window // 2``.
    """

    def __init__(self, channels: int, window: int = 7, reduction: int = 4) -> None:
        super().__init__()
        if window % 2 != 1:
            raise ValueError(f"attention window must be odd, got {window}")
        self.window = window
        hidden = max(channels // reduction, 4)
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, channels, 1)

    @property
    def reach(self) -> int:
        return self.window // 2

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, H, W)``: ``features`` times per-pixel channel gates in (0, 1).

        The local mean is taken after the 1x1 squeeze, on its fewer channels: the
        squeeze is affine and the mean's weights sum to 1, so the order gives the
        same descriptor (up to float rounding) at a quarter of the box-sum work.
        """
        descriptor = local_mean(self.squeeze(features), self.window)
        return features * torch.sigmoid(self.excite(F.relu(descriptor)))


def local_mean(features: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over each pixel's ``window x window`` neighbourhood, inside the image only.

    Equals ``F.avg_pool2d(features, window, 1, window // 2, count_include_pad=False)``
    (up to float rounding) but runs as two 1-D box sums of shifted views, several
    times faster on CPUs than the pool or a depthwise convolution. The sums and
    the division run in float32 whatever the input's dtype or the autocast state;
    the mean is returned in the input's dtype. ``(B, C, H, W) -> (B, C, H, W)``.
    """
    radius = window // 2
    height, width = features.shape[2:]
    with _full_precision(features):
        values = _at_least_float32(features)
        summed = _box_sum(_box_sum(values, radius, dim=2), radius, dim=3)
        counts = _window_counts(height, radius, values.device)[:, None] * _window_counts(width, radius, values.device)
        return (summed / counts).to(features.dtype)


def _box_sum(values: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Sum of the ``2 * radius + 1`` values around each index along ``dim`` (2: rows, 3: columns), zeros outside."""
    length = values.shape[dim]
    padded = F.pad(values, (0, 0, radius, radius) if dim == 2 else (radius, radius))
    total = padded.narrow(dim, 0, length).clone()
    for shift in range(1, 2 * radius + 1):
        total += padded.narrow(dim, shift, length)
    return total


def _window_counts(length: int, radius: int, device: torch.device) -> torch.Tensor:
    """How many of the ``2 * radius + 1`` window positions around each index lie inside ``[0, length)``.

    ``(length,)`` float32, computed on integer indices (exact at any length).
    """
    index = torch.arange(length, device=device)
    return ((index + radius).clamp(max=length - 1) - (index - radius).clamp(min=0) + 1).float()


def _full_precision(like: torch.Tensor) -> ContextManager[object]:
    """Autocast switched off on ``like``'s device: the ops inside run in their inputs' dtype.

    Used with inputs cast by :func:`_at_least_float32`, for the parts of a block reduced
    precision cannot hold.
    """
    return torch.autocast(device_type=like.device.type, enabled=False)


def _at_least_float32(values: torch.Tensor) -> torch.Tensor:
    """``values`` in float32 when stored in fewer bits (bf16, fp16); float32 and float64 as they are."""
    return values.to(torch.promote_types(values.dtype, torch.float32))


class ResidualAttentionBlock(nn.Module):
    """conv3x3 - ReLU - conv3x3 - local channel attention, plus identity.

    reach = 2 + attention window // 2.
    """

    def __init__(self, channels: int, attention_window: int = 7) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.attention = LocalChannelAttention(channels, attention_window)

    @property
    def reach(self) -> int:
        return 2 + self.attention.reach

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attention(self.conv2(F.relu(self.conv1(x))))


class NeighbourhoodAttention(nn.Module):
    """Multi-head self-attention of each pixel over its ``window x window`` neighbours.

    A sliding-window ("neighbourhood") attention: translation-equivariant like a
    convolution, so it needs no window grid and tiles exactly. A learned
    relative position bias per head. reach = ``window // 2``.
    """

    def __init__(self, channels: int, num_heads: int = 2, window: int = 5) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads})")
        if window % 2 != 1:
            raise ValueError(f"attention window must be odd, got {window}")
        self.num_heads = num_heads
        self.window = window
        self.qkv = PointwiseConv(channels, 3 * channels)
        self.proj = PointwiseConv(channels, channels)
        self.position_bias = nn.Parameter(torch.zeros(num_heads, window * window))

    @property
    def reach(self) -> int:
        return self.window // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, H, W)``.

        The projections run in the autocast dtype; the attention between them
        (dot products, softmax over the ``window**2`` neighbours, the weighted
        sum of values) runs in float32 and is cast back before the output projection.
        The attention runs over strips of rows (:func:`strip_rows`), each with its
        ``radius`` rows of neighbours, so its working set stays in the CPU's cache
        at any image size; the strips' results are exactly those of one pass.
        """
        batch, channels, height, width = x.shape
        head_dim = channels // self.num_heads
        radius = self.window // 2
        # Row-major (NCHW) whatever the caller's layout: the shifted products below
        # run two to three times slower on channels-last views.
        projected = self.qkv(x, torch.contiguous_format)
        with _full_precision(projected):
            query, key, value = _at_least_float32(projected).chunk(3, dim=1)
            query = query.reshape(batch, self.num_heads, head_dim, height, width) * head_dim**-0.5
            # Zero-padded keys/values; each neighbour offset is one shifted view, so
            # memory stays O(window^2 * heads) maps instead of O(window^2 * channels).
            key = F.pad(key, (radius,) * 4).reshape(batch, self.num_heads, head_dim, height + 2 * radius, -1)
            value = F.pad(value, (radius,) * 4).reshape(batch, self.num_heads, head_dim, height + 2 * radius, -1)
            rows = strip_rows(height, width)
            strips = [
                self._attend(query[..., top : top + rows, :], key[..., top : top + rows + 2 * radius, :],
                             value[..., top : top + rows + 2 * radius, :])
                for top in range(0, height, rows)
            ]
            attended = strips[0] if len(strips) == 1 else torch.cat(strips, dim=3)
        attended = attended.reshape(batch, channels, height, width).to(projected.dtype)
        return self.proj(attended, memory_format_of(x))

    def _attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Attention of one strip of rows.

        ``query`` ``(B, heads, head_dim, h, W)`` (already scaled); ``key`` and
        ``value`` ``(B, heads, head_dim, h + window - 1, W + window - 1)``, the
        strip's zero-padded neighbourhood; returns ``(B, heads, head_dim, h, W)``.
        """
        batch, heads, _, height, width = query.shape
        offsets = [(dy, dx) for dy in range(self.window) for dx in range(self.window)]
        # (B, heads, window*window, h, W); the head_dim sum runs on flattened maps (faster on CPUs).
        logits = torch.stack(
            [(query * key[..., dy : dy + height, dx : dx + width]).flatten(3).sum(dim=2) for dy, dx in offsets],
            dim=2,
        ).view(batch, heads, len(offsets), height, width)
        bias = self.position_bias.to(query.dtype).view(1, heads, -1, 1, 1)
        weights = (logits + bias).softmax(dim=2)
        attended = torch.zeros_like(query)
        for index, (dy, dx) in enumerate(offsets):
            attended.addcmul_(weights[:, :, index : index + 1], value[..., dy : dy + height, dx : dx + width])
        return attended


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a 4-d tensor stored channels-last (and not also row-major), else
    ``torch.contiguous_format``."""
    channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if channels_last else torch.contiguous_format


class PointwiseConv(nn.Conv2d):
    """A 1x1 convolution that returns its output in the memory layout asked for.

    A subclass of ``nn.Conv2d`` (same parameters and checkpoint keys), so forward
    hooks, such as the engine's memory probe, see its output as any module's.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, memory_format: torch.memory_format | None = None) -> torch.Tensor:
        """``(B, C, H, W) -> (B, O, H, W)``, in ``memory_format`` (None: as the convolution returns it).

        When the layouts differ, each image is one matrix product ``(O, C) x (C, H*W)``
        that reads ``x`` in its own layout and writes the wanted one: on a CPU about
        four times faster than the convolution followed by a layout copy (which
        strides through memory). Same values up to float rounding. A trace (an ONNX
        export) records the convolution, whose graph takes any batch size.
        """
        if memory_format is None or memory_format_of(x) == memory_format:
            return super().forward(x)
        if torch.jit.is_tracing():
            return super().forward(x).contiguous(memory_format=memory_format)
        batch, _, height, width = x.shape
        weight = self.weight.flatten(1)  # (O, C)
        bias = self.bias if self.bias is not None else weight.new_zeros(weight.shape[0])
        if memory_format == torch.channels_last:  # (H*W, C) x (C, O): pixels in rows, channels innermost
            products = [torch.addmm(bias[None, :], image.flatten(1).t(), weight.t()) for image in x]
            return _stack(products).view(batch, height, width, -1).permute(0, 3, 1, 2)
        products = [torch.addmm(bias[:, None], weight, image.flatten(1)) for image in x]
        return _stack(products).view(batch, -1, height, width)


def _stack(images: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack(images)``, without a copy for one image."""
    return images[0].unsqueeze(0) if len(images) == 1 else torch.stack(images)


STRIP_PIXELS = 16384
"""Query pixels per strip of :class:`NeighbourhoodAttention`: measured on a 2-core
AMD EPYC (1 thread, 32 channels), strips of 16k pixels ran the attention of a
1024 px image 2.9x faster than one pass, and were no slower at 128 px."""


def strip_rows(height: int, width: int) -> int:
    """Rows per strip of :class:`NeighbourhoodAttention` for a ``height x width`` map.

    About :data:`STRIP_PIXELS` pixels per strip, at least one row; the whole map
    when traced (an ONNX export), whose graph must not fix the number of strips.
    """
    if torch.jit.is_tracing():
        return height
    return max(1, min(height, STRIP_PIXELS // max(width, 1)))


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of each pixel (local: reach 0)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class LocalTransformerBlock(nn.Module):
    """Pre-norm transformer block: neighbourhood attention then a per-pixel MLP.

    reach = attention window // 2.
    """

    def __init__(self, channels: int, num_heads: int = 2, window: int = 5, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        hidden = int(channels * mlp_ratio)
        self.norm1 = ChannelLayerNorm(channels)
        self.attention = NeighbourhoodAttention(channels, num_heads, window)
        self.norm2 = ChannelLayerNorm(channels)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.GELU(), nn.Conv2d(hidden, channels, 1))

    @property
    def reach(self) -> int:
        return self.attention.reach

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ResidualGroup(nn.Module):
    """Residual attention blocks, one local transformer block, a conv3x3; plus identity."""

    def __init__(
        self,
        channels: int,
        num_blocks: int,
        attention_window: int,
        num_heads: int,
        transformer_window: int,
        mlp_ratio: float,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(ResidualAttentionBlock(channels, attention_window) for _ in range(num_blocks))
        self.transformer = LocalTransformerBlock(channels, num_heads, transformer_window, mlp_ratio)
        self.tail = nn.Conv2d(channels, channels, 3, padding=1)

    @property
    def reach(self) -> int:
        return sum(block.reach for block in self.blocks) + self.transformer.reach + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x
        for block in self.blocks:
            features = block(features)
        return x + self.tail(self.transformer(features))


class PixelShuffleND(nn.Module):
    """Pixel shuffle with a separate factor per axis, e.g. ``(1, 4)``.

    ``(B, C*sy*sx, H, W) -> (B, C, H*sy, W*sx)``; with equal factors it equals
    ``nn.PixelShuffle``.
    """

    def __init__(self, scale: tuple[int, int]) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        sy, sx = self.scale
        out_channels = channels // (sy * sx)
        x = x.reshape(batch, out_channels, sy, sx, height, width)
        return x.permute(0, 1, 4, 2, 5, 3).reshape(batch, out_channels, height * sy, width * sx)
