"""Normalisation layers not provided by torch for channels-first (NCHW / NCDHW) tensors."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densekit.errors import positive_int

__all__ = ['ChannelLayerNorm', 'GlobalResponseNorm']


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of a channels-first tensor, for any spatial rank.

    Each pixel (voxel) is normalised over its ``C`` channels, as ``nn.LayerNorm(C)`` does on a
    channels-last tensor; the affine weight and bias have ``C`` entries. This is the "LayerNorm
    (channels_first)" of ConvNeXt's stem and downsampling layers.

    Args:
        num_channels: Channels C.
        eps: Added to the variance.

    Example:
        >>> ChannelLayerNorm(8)(torch.randn(2, 8, 3, 4, 5)).shape
        torch.Size([2, 8, 3, 4, 5])
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    _abbr_ = 'ln'

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        positive_int(num_channels, 'num_channels')
        super().__init__(num_channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> same shape, normalised over C."""
        if x.dim() < 3 or x.shape[1] != self.normalized_shape[0]:
            raise ValueError(f'ChannelLayerNorm({self.normalized_shape[0]}) expects an '
                             f'(N, C, *spatial) tensor with C={self.normalized_shape[0]}, got '
                             f'{tuple(x.shape)}')
        y = F.layer_norm(x.movedim(1, -1), self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return y.movedim(-1, 1)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt V2's global response normalisation, identity at initialisation.

    ``x + gamma * (x * n) + beta``, where ``n`` is each channel's spatial L2 norm divided by the
    mean of those norms over the channels (plus ``eps``).

    Args:
        channels: Channels C.
        eps: Added to the mean norm.
        spatial_dims: ``None`` for a channels-last ``(N, *spatial, C)`` tensor (``gamma`` and
            ``beta`` of shape ``(C,)``, as in ConvNeXt's MLP); an int for a channels-first
            ``(N, C, *spatial)`` tensor of that spatial rank (shape ``(1, C, 1, ...)``, as in
            UniRepLKNet's FFN).

    Example:
        >>> GlobalResponseNorm(8, spatial_dims=3)(torch.randn(2, 8, 3, 4, 5)).shape
        torch.Size([2, 8, 3, 4, 5])
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, channels: int, eps: float = 1e-6, spatial_dims: Optional[int] = None
                 ) -> None:
        super().__init__()
        positive_int(channels, 'channels')
        if spatial_dims is None:
            shape: tuple = (channels,)
        else:
            shape = (1, channels) + (1,) * positive_int(spatial_dims, 'spatial_dims')
        self.channels_last = spatial_dims is None
        self.gamma = nn.Parameter(torch.zeros(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Same shape as ``x``."""
        if self.channels_last:
            spatial, channel = tuple(range(1, x.dim() - 1)), -1
        else:
            spatial, channel = tuple(range(2, x.dim())), 1
        norms = torch.linalg.vector_norm(x, dim=spatial, keepdim=True)
        scale = norms / (norms.mean(dim=channel, keepdim=True) + self.eps)
        return x + self.gamma * (x * scale) + self.beta
