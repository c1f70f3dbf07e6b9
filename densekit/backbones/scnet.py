"""SCNet (Wu et al., 2023): a fully 1x1-convolutional SR network with parameter-free shifts.

Spatial context comes only from :class:`~densekit.blocks.shift.Shift8`, which moves eight
channel groups by one pixel in the eight compass directions (zero padding). A block
(:class:`~densekit.blocks.shift.ShiftBlock`) is 1x1 conv, Shift8, ReLU, 1x1 conv plus the
identity; the body is a 1x1 entry conv (LeakyReLU 0.1) and 16 blocks at 64 channels. The head
(:class:`~densekit.heads.shift_head.ShiftUpsampleHead`) upsamples bilinearly (per x2 step, or
once for x3), mixes with 1x1 convs around a shift, and adds the bilinearly upsampled input image
at the end.
"""
from __future__ import annotations

from torch import Tensor, nn

from densekit.backbones.contract import FullResolutionBody
from densekit.blocks.shift import ShiftBlock, small_kaiming_init
from densekit.errors import positive_int
from densekit.heads.shift_head import check_shift_channels
from densekit.layers import LayerFactory
from densekit.registry import MODELS

__all__ = ['SCNetBody']

_LAYERS = LayerFactory(2)


@MODELS.register_module()
class SCNetBody(FullResolutionBody, nn.Module):
    """SCNet feature extractor.

    Args:
        in_channels: Image channels.
        channels: Feature channels, a multiple of 8 (64).
        num_blocks: Shift blocks (16).

    Shape:
        ``(N, in, H, W)`` -> ``(N, channels, H, W)``; e.g. (1, 3, 32, 32) -> (1, 64, 32, 32).
    """

    def __init__(self, in_channels: int = 3, channels: int = 64, num_blocks: int = 16) -> None:
        super().__init__()
        positive_int(in_channels, 'in_channels')
        positive_int(num_blocks, 'num_blocks')
        check_shift_channels(channels)
        self.conv_first = _LAYERS.conv(in_channels, channels, 1)
        small_kaiming_init(self.conv_first)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        self.blocks = nn.Sequential(*[ShiftBlock(channels) for _ in range(num_blocks)])
        self.out_channels = (channels,)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.blocks(self.act(self.conv_first(x)))
