"""A residual U-Net: the fast CNN deraining baseline for CPU users.

Per level: residual blocks (3x3 conv, ReLU, 3x3 conv, identity); down = stride-2 3x3 conv
to the next width + ReLU; up = 1x1 conv to 4C' + PixelShuffle(2); skips are added. The head
(:class:`~.common.ReconstructionHead`) is a 3x3 conv to RGB plus the input image, so the
network learns the rain layer (residual learning).
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from densekit.backbones.contract import FullResolutionBody
from densekit.blocks.edsr_block import EDSRResBlock
from densekit.errors import positive_int, positive_ints
from densekit.layers import ConvNormAct, LayerFactory
from densekit.registry import MODELS

__all__ = ['ResUNet']

_LAYERS = LayerFactory(2)


@MODELS.register_module()
class ResUNet(FullResolutionBody, nn.Module):
    """Residual U-Net body.

    Args:
        in_channels: Image channels.
        channels: Width per level, e.g. ``(32, 64, 128)`` (levels = len).
        blocks: Residual blocks per level (encoder and decoder each), an int or per level.

    Shape:
        ``(N, in, H, W)`` with H, W multiples of ``2 ** (levels - 1)`` ->
        ``(N, channels[0], H, W)``; e.g. (1, 3, 64, 64) -> (1, 32, 64, 64).
    """

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (32, 64, 128),
                 blocks: int | Sequence[int] = 2) -> None:
        super().__init__()
        positive_int(in_channels, 'in_channels')
        channels = tuple(positive_ints(tuple(channels), 'channels'))
        depth = [blocks] * len(channels) if isinstance(blocks, int) else list(blocks)
        if len(depth) != len(channels) or any(not isinstance(d, int) or d < 0 for d in depth):
            raise ValueError(f'blocks must be an int >= 0 or one per level, got {blocks!r}')
        self.size_divisor = 2 ** (len(channels) - 1)
        self.stem = ConvNormAct(2, in_channels, channels[0], 3, padding=1)
        self.encoders = nn.ModuleList(
            nn.Sequential(*[EDSRResBlock(c) for _ in range(d)]) for c, d in zip(channels, depth))
        self.downs = nn.ModuleList(
            ConvNormAct(2, cin, cout, 3, stride=2, padding=1)
            for cin, cout in zip(channels[:-1], channels[1:]))
        self.ups = nn.ModuleList(
            nn.Sequential(_LAYERS.conv(cout, cin * 4, 1), nn.PixelShuffle(2))
            for cin, cout in zip(channels[:-1], channels[1:]))
        self.decoders = nn.ModuleList(
            nn.Sequential(*[EDSRResBlock(c) for _ in range(d)])
            for c, d in zip(channels[:-1], depth[:-1]))
        self.out_channels = (channels[0],)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        if x.shape[-2] % self.size_divisor or x.shape[-1] % self.size_divisor:
            raise ValueError(f'ResUNet needs H and W divisible by {self.size_divisor}, got '
                             f'{tuple(x.shape)}')
        feat = self.stem(x)
        skips = []
        for level, encoder in enumerate(self.encoders):
            feat = encoder(feat)
            if level < len(self.downs):
                skips.append(feat)
                feat = self.downs[level](feat)
        for level in reversed(range(len(self.ups))):
            feat = self.decoders[level](self.ups[level](feat) + skips[level])
        return feat
