"""SCNet's reconstruction head (Wu et al., 2023): bilinear upsampling, 1x1 convs around a
:class:`~densekit.blocks.shift.Shift8`, and the bilinearly upsampled input image added at the
end."""
from __future__ import annotations

from typing import List

import torch.nn.functional as F
from torch import Tensor, nn

from densekit.blocks.shift import Shift8, small_kaiming_init
from densekit.errors import positive_int
from densekit.heads.reconstruction import check_scale
from densekit.layers import LayerFactory
from densekit.registry import MODELS

__all__ = ['ShiftUpsampleHead', 'check_shift_channels']

_LAYERS = LayerFactory(2)


def check_shift_channels(channels: int) -> int:
    """``channels`` if it is a positive multiple of 8 (the Shift8 groups), else ``ValueError``."""
    positive_int(channels, 'channels')
    if channels % 8:
        raise ValueError(f'channels must be a multiple of 8 (Shift8 groups), got {channels}')
    return channels


class _UpShift(nn.Module):
    """Bilinear upsampling by ``factor``, then 1x1 conv, LeakyReLU, Shift8, 1x1 conv."""

    def __init__(self, channels: int, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.conv1 = _LAYERS.conv(channels, channels, 1)
        self.act = nn.LeakyReLU(0.02, inplace=True)
        self.shift = Shift8()
        self.conv2 = _LAYERS.conv(channels, channels, 1)
        small_kaiming_init(self.conv1, self.conv2)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        x = F.interpolate(x, scale_factor=self.factor, mode='bilinear', align_corners=False)
        return self.conv2(self.shift(self.act(self.conv1(x))))


@MODELS.register_module()
class ShiftUpsampleHead(nn.Module):
    """SCNet reconstruction with a bilinear skip of the input image.

    Shape:
        ``(N, C, H, W)`` features and ``(N, out, H, W)`` input -> ``(N, out, s*H, s*W)``.
    """

    def __init__(self, in_channels: int = 64, scale: int = 2, out_channels: int = 3) -> None:
        super().__init__()
        check_shift_channels(in_channels)
        positive_int(out_channels, 'out_channels')
        self.scale = check_scale(scale)
        factors: List[int] = [2, 2] if scale == 4 else [scale]
        self.ups = nn.ModuleList(_UpShift(in_channels, f) for f in factors)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        self.conv_hr = _LAYERS.conv(in_channels, in_channels, 1)
        self.conv_last = _LAYERS.conv(in_channels, out_channels, 1)
        small_kaiming_init(self.conv_hr, self.conv_last)

    def forward(self, feats: Tensor, lq: Tensor) -> Tensor:  # noqa: D102
        x = feats
        for up in self.ups:
            x = self.act(up(x))
        x = self.conv_last(self.act(self.conv_hr(x)))
        base = F.interpolate(lq, scale_factor=self.scale, mode='bilinear', align_corners=False)
        return x + base
