"""CARN / CARN-M body (Ahn et al., 2018): cascading residual network.

Entry conv 3->C; ``num_blocks`` cascading blocks, each of ``num_units`` residual units whose
outputs are concatenated with everything before and fused by 1x1 conv + ReLU; the same cascade
is repeated at block level. CARN-M uses group convolutions in an efficient residual unit
(3x3 group conv, ReLU, 3x3 group conv, ReLU, 1x1 conv) and shares one unit's weights inside a
block (``groups=4, share_units=True``). The head is a ReLU PixelShuffle upsampler
(``PixelShuffleHead(act=True)``) followed by the 3x3 exit conv.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from densekit.backbones.contract import FullResolutionBody
from densekit.errors import positive_int
from densekit.layers import ConvNormAct, LayerFactory
from densekit.registry import MODELS

__all__ = ['CARNBody']

_LAYERS = LayerFactory(2)


class _ResidualUnit(nn.Module):
    """``relu(x + f(x))``; f = conv3-ReLU-conv3, or the CARN-M efficient form with groups."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        if groups == 1:
            self.body = nn.Sequential(_LAYERS.conv(channels, channels, 3, padding=1),
                                      nn.ReLU(inplace=True),
                                      _LAYERS.conv(channels, channels, 3, padding=1))
        else:
            self.body = nn.Sequential(
                _LAYERS.conv(channels, channels, 3, padding=1, groups=groups),
                nn.ReLU(inplace=True),
                _LAYERS.conv(channels, channels, 3, padding=1, groups=groups),
                nn.ReLU(inplace=True),
                _LAYERS.conv(channels, channels, 1))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.act(x + self.body(x))


class _Cascade(nn.Module):
    """Cascade of ``n`` modules: after each, concat all outputs so far and fuse with 1x1+ReLU."""

    def __init__(self, channels: int, units: list) -> None:
        super().__init__()
        self.units = nn.ModuleList(units)
        self.fuse = nn.ModuleList(
            ConvNormAct(2, channels * (i + 2), channels, 1) for i in range(len(units)))

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        concat, out = x, x
        for unit, fuse in zip(self.units, self.fuse):
            concat = torch.cat([concat, unit(out)], dim=1)
            out = fuse(concat)
        return out


@MODELS.register_module()
class CARNBody(FullResolutionBody, nn.Module):
    """CARN feature extractor (entry conv and the block-level cascade).

    Args:
        in_channels: Image channels.
        channels: Feature channels (64).
        num_blocks: Cascading blocks (3).
        num_units: Residual units per block (3).
        groups: Group convs in the residual units (1 = CARN, 4 = CARN-M).
        share_units: One residual unit's weights reused inside each block (CARN-M).

    Shape:
        ``(N, in, H, W)`` -> ``(N, channels, H, W)``; e.g. (1, 3, 24, 24) -> (1, 64, 24, 24).
    """

    def __init__(self, in_channels: int = 3, channels: int = 64, num_blocks: int = 3,
                 num_units: int = 3, groups: int = 1, share_units: bool = False) -> None:
        super().__init__()
        for name, value in (('in_channels', in_channels), ('channels', channels),
                            ('num_blocks', num_blocks), ('num_units', num_units),
                            ('groups', groups)):
            positive_int(value, name)
        if channels % groups:
            raise ValueError(f'groups={groups} must divide channels={channels}')
        self.entry = _LAYERS.conv(in_channels, channels, 3, padding=1)
        blocks = []
        for _ in range(num_blocks):
            if share_units:
                shared = _ResidualUnit(channels, groups)
                units = [shared] * num_units
            else:
                units = [_ResidualUnit(channels, groups) for _ in range(num_units)]
            blocks.append(_Cascade(channels, units))
        self.cascade = _Cascade(channels, blocks)
        self.out_channels = (channels,)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.cascade(self.entry(x))
