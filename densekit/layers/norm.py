"""Normalisation layers not provided by torch for channels-first (NCHW / NCDHW) tensors."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from densekit.errors import positive_int

__all__ = ['ChannelLayerNorm']


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
