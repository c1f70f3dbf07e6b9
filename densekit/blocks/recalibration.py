"""Channel / spatial recalibration blocks, 2D (NCHW) and 3D (NCDHW).

* :class:`ChannelSE` - squeeze-and-excitation over channels: global average pool, a bottleneck
  of two 1x1 convs (ReLU between), sigmoid gate per channel.
* :class:`SpatialSE` - a 1x1 conv to one channel and a sigmoid: one gate per pixel / voxel.
* :class:`scSE` - both gates ("concurrent spatial and channel squeeze & excitation", Roy et al.),
  combined by ``max`` or ``add`` of the two recalibrated maps.
* :class:`ECA` - efficient channel attention (ECA-Net): global average pool, a 1D conv across
  the channel axis with an adaptive odd kernel size (:func:`eca_kernel_size`), sigmoid gate.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from densekit.errors import positive_int
from densekit.layers import LayerFactory, check_spatial_dims
from densekit.registry import MODELS

__all__ = ['ChannelSE', 'SpatialSE', 'scSE', 'ECA', 'eca_kernel_size']


def _global_mean(x: Tensor) -> Tensor:
    """``(N, C, *spatial)`` -> ``(N, C, 1, ..., 1)``."""
    return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


class ChannelSE(nn.Module):
    """Channel squeeze-and-excitation: ``x * sigmoid(W2 relu(W1 gap(x)))``.

    Args:
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        channels: Input (= output) channels.
        reduction: Bottleneck reduction; the hidden width is ``max(1, channels // reduction)``.
        hidden_channels: Explicit hidden width (overrides ``reduction``).

    Example:
        >>> ChannelSE(3, 8)(torch.rand(1, 8, 4, 5, 6)).shape
        torch.Size([1, 8, 4, 5, 6])
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 4,
                 hidden_channels: int | None = None) -> None:
        super().__init__()
        factory = LayerFactory(spatial_dims)
        self.spatial_dims = factory.spatial_dims
        channels = positive_int(channels, 'channels')
        reduction = positive_int(reduction, 'reduction')
        hidden = max(1, channels // reduction) if hidden_channels is None else \
            positive_int(hidden_channels, 'hidden_channels')
        self.reduce = factory.conv(channels, hidden, 1)
        self.expand = factory.conv(hidden, channels, 1)

    def gate(self, x: Tensor) -> Tensor:
        """Per-channel gate ``(N, C, 1, ..., 1)`` in (0, 1)."""
        return torch.sigmoid(self.expand(torch.relu(self.reduce(_global_mean(x)))))

    def forward(self, x: Tensor) -> Tensor:
        """Recalibrate ``x`` ``(N, C, *spatial)``; same shape out."""
        return x * self.gate(x)


class SpatialSE(nn.Module):
    """Spatial squeeze-and-excitation: ``x * sigmoid(conv1x1(x))`` (one gate per position).

    Example:
        >>> SpatialSE(2, 8)(torch.rand(2, 8, 5, 7)).shape
        torch.Size([2, 8, 5, 7])
    """

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        factory = LayerFactory(spatial_dims)
        self.spatial_dims = factory.spatial_dims
        self.squeeze = factory.conv(positive_int(channels, 'channels'), 1, 1)

    def gate(self, x: Tensor) -> Tensor:
        """Per-position gate ``(N, 1, *spatial)`` in (0, 1)."""
        return torch.sigmoid(self.squeeze(x))

    def forward(self, x: Tensor) -> Tensor:
        """Recalibrate ``x`` ``(N, C, *spatial)``; same shape out."""
        return x * self.gate(x)


@MODELS.register_module()
class scSE(nn.Module):  # noqa: N801 - the paper's name
    """Concurrent spatial and channel squeeze & excitation.

    ``combine='max'``: ``max(cSE(x), sSE(x))`` (the paper's best); ``'add'``: their sum.

    Args:
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        channels: Input (= output) channels.
        reduction: Channel-SE bottleneck reduction (hidden = ``max(1, channels // reduction)``).
        combine: ``'max'`` or ``'add'``.

    Raises:
        ValueError: bad ``spatial_dims``, ``channels``, ``reduction`` or ``combine``.

    Example:
        >>> scSE(3, 16, combine='add')(torch.rand(1, 16, 6, 7, 5)).shape
        torch.Size([1, 16, 6, 7, 5])
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 2,
                 combine: str = 'max') -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        if combine not in ('max', 'add'):
            raise ValueError(f"combine must be 'max' or 'add', got {combine!r}")
        self.combine = combine
        self.cse = ChannelSE(spatial_dims, channels, reduction)
        self.sse = SpatialSE(spatial_dims, channels)

    def forward(self, x: Tensor) -> Tensor:
        """Recalibrate ``x`` ``(N, C, *spatial)``; same shape out."""
        c, s = self.cse(x), self.sse(x)
        return torch.maximum(c, s) if self.combine == 'max' else c + s


def eca_kernel_size(channels: int, gamma: float = 2.0, b: float = 1.0) -> int:
    """ECA's adaptive kernel size: ``|log2(C) / gamma + b / gamma|`` truncated, made odd (+1).

    Example:
        >>> [eca_kernel_size(c) for c in (16, 64, 256, 512)]
        [3, 3, 5, 5]
    """
    channels = positive_int(channels, 'channels')
    if gamma <= 0:
        raise ValueError(f'gamma must be > 0, got {gamma!r}')
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


@MODELS.register_module()
class ECA(nn.Module):
    """Efficient channel attention: a ``k``-tap 1D conv (no bias) across the pooled channels.

    Args:
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        channels: Input (= output) channels.
        kernel_size: Odd 1D kernel size; ``None`` = :func:`eca_kernel_size` (channels, gamma, b).
        gamma: Slope of the adaptive kernel-size formula.
        b: Offset of the adaptive kernel-size formula.

    Raises:
        ValueError: bad ``spatial_dims`` / ``channels``, or an even / non-positive
            ``kernel_size``.

    Example:
        >>> eca = ECA(2, 64)
        >>> eca.kernel_size, eca(torch.rand(2, 64, 5, 7)).shape
        (3, torch.Size([2, 64, 5, 7]))
    """

    def __init__(self, spatial_dims: int, channels: int, kernel_size: int | None = None,
                 gamma: float = 2.0, b: float = 1.0) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.channels = positive_int(channels, 'channels')
        if kernel_size is None:
            kernel_size = eca_kernel_size(channels, gamma, b)
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be a positive odd int, got {kernel_size!r}')
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def gate(self, x: Tensor) -> Tensor:
        """Per-channel gate ``(N, C, 1, ..., 1)`` in (0, 1)."""
        pooled = _global_mean(x)
        n, c = pooled.shape[:2]
        y = self.conv(pooled.reshape(n, 1, c))
        return torch.sigmoid(y).reshape(pooled.shape)

    def forward(self, x: Tensor) -> Tensor:
        """Recalibrate ``x`` ``(N, C, *spatial)``; same shape out."""
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.channels:
            raise ValueError(f'ECA expects (N, {self.channels}, *spatial) with '
                             f'{self.spatial_dims} spatial dims, got {tuple(x.shape)}')
        return x * self.gate(x)
