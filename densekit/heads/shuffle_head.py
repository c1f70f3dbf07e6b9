"""Parameter-free SR reconstruction: pixel shuffle of the body's sub-pixels plus an input skip.

For bodies whose output already *is* the high-resolution residual in image units, arranged as
``scale^2`` sub-pixel channels per image channel (the LUT-convertible :class:`~densekit.backbones.
RCLUTBody`): nothing learnable may follow them, or the network would no longer be a table.
"""
from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from densekit.errors import ArgumentError, positive_int
from densekit.heads.reconstruction import upsample_image
from densekit.registry import MODELS

__all__ = ['PixelShuffleSkipHead']

SKIPS = (None, 'bicubic', 'bilinear')


@MODELS.register_module()
class PixelShuffleSkipHead(nn.Module):
    """``pixel_shuffle(feats, scale) + upsample(lq)`` (no parameters).

    Args:
        scale: Upscaling factor.
        input_skip: ``'bicubic'`` (MATLAB ``imresize``), ``'bilinear'`` or None (no skip).

    Shape:
        ``(N, C * scale^2, H, W)`` and ``(N, C, H, W)`` -> ``(N, C, scale*H, scale*W)``; e.g. x2:
        (1, 4, 8, 8) and (1, 1, 8, 8) -> (1, 1, 16, 16).
    """

    def __init__(self, scale: int = 2, input_skip: Optional[str] = 'bicubic') -> None:
        super().__init__()
        positive_int(scale, 'scale')
        if input_skip not in SKIPS:
            raise ArgumentError(f'input_skip must be one of {SKIPS}, got {input_skip!r}')
        self.scale = scale
        self.input_skip = input_skip

    def forward(self, feats: Tensor, lq: Tensor) -> Tensor:  # noqa: D102
        if feats.dim() != 4 or feats.shape[1] != lq.shape[1] * self.scale ** 2 \
                or feats.shape[-2:] != lq.shape[-2:]:
            raise ValueError(f'PixelShuffleSkipHead(scale={self.scale}) needs features of '
                             f'shape (N, C * {self.scale ** 2}, H, W) for an (N, C, H, W) input; '
                             f'got {tuple(feats.shape)} and {tuple(lq.shape)}')
        out = F.pixel_shuffle(feats, self.scale)
        if self.input_skip:
            out = out + upsample_image(lq, self.scale, self.input_skip)
        return out
