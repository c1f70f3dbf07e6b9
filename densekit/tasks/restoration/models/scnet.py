"""SCNet (Wu et al., 2023): a fully 1x1-convolutional SR network with parameter-free shifts.

Spatial context comes only from :class:`Shift8`, which moves eight channel groups by one pixel
in the eight compass directions (zero padding). A block is 1x1 conv, Shift8, ReLU, 1x1 conv
plus the identity; the body is a 1x1 entry conv (LeakyReLU 0.1) and 16 blocks at 64 channels.
The head upsamples bilinearly (per x2 step, or once for x3), mixes with 1x1 convs around a
shift, and adds the bilinearly upsampled input image at the end.
"""
from __future__ import annotations

from typing import List

import torch.nn.functional as F
from torch import Tensor, nn

from densekit.backbones.contract import FullResolutionBody
from densekit.registry import MODELS
from densekit.tasks.restoration.models.common import check_positive, check_scale

__all__ = ['Shift8', 'SCNetBody', 'ShiftUpsampleHead']

# (dy, dx) source offsets of the eight channel groups: up, down, left, right and diagonals.
_DIRECTIONS = ((-1, 0), (1, 0), (0, -1), (0, 1), (1, 1), (1, -1), (-1, 1), (-1, -1))


class Shift8(nn.Module):
    """Shift 8 channel groups by ``stride`` pixels in 8 directions, zero-filling the border.

    Output group ``g`` at ``(y, x)`` is input group ``g`` at ``(y + dy_g, x + dx_g)``.

    Shape:
        ``(N, C, H, W)`` -> same; ``C`` must be a multiple of 8.
    """

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        self.stride = check_positive('stride', stride)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        n, c, h, w = x.shape
        if c % 8:
            raise ValueError(f'Shift8 needs channels divisible by 8, got {c}')
        g, s = c // 8, self.stride
        padded = F.pad(x, (s, s, s, s))
        out = x.new_empty(x.shape)
        for i, (dy, dx) in enumerate(_DIRECTIONS):
            out[:, i * g:(i + 1) * g] = padded[:, i * g:(i + 1) * g,
                                               s + dy * s:s + dy * s + h, s + dx * s:s + dx * s + w]
        return out


def _init_small(*convs: nn.Conv2d, scale: float = 0.1) -> None:
    for conv in convs:
        nn.init.kaiming_normal_(conv.weight)
        conv.weight.data.mul_(scale)
        nn.init.zeros_(conv.bias)


class _ShiftBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 1)
        self.shift = Shift8()
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 1)
        _init_small(self.conv1, self.conv2)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return x + self.conv2(self.act(self.shift(self.conv1(x))))


def _check_channels(channels: int) -> int:
    check_positive('channels', channels)
    if channels % 8:
        raise ValueError(f'channels must be a multiple of 8 (Shift8 groups), got {channels}')
    return channels


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
        check_positive('in_channels', in_channels)
        check_positive('num_blocks', num_blocks)
        _check_channels(channels)
        self.conv_first = nn.Conv2d(in_channels, channels, 1)
        _init_small(self.conv_first)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        self.blocks = nn.Sequential(*[_ShiftBlock(channels) for _ in range(num_blocks)])
        self.out_channels = (channels,)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.blocks(self.act(self.conv_first(x)))


class _UpShift(nn.Module):
    """Bilinear upsampling by ``factor``, then 1x1 conv, LeakyReLU, Shift8, 1x1 conv."""

    def __init__(self, channels: int, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.conv1 = nn.Conv2d(channels, channels, 1)
        self.act = nn.LeakyReLU(0.02, inplace=True)
        self.shift = Shift8()
        self.conv2 = nn.Conv2d(channels, channels, 1)
        _init_small(self.conv1, self.conv2)

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
        _check_channels(in_channels)
        check_positive('out_channels', out_channels)
        self.scale = check_scale(scale)
        factors: List[int] = [2, 2] if scale == 4 else [scale]
        self.ups = nn.ModuleList(_UpShift(in_channels, f) for f in factors)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        self.conv_hr = nn.Conv2d(in_channels, in_channels, 1)
        self.conv_last = nn.Conv2d(in_channels, out_channels, 1)
        _init_small(self.conv_hr, self.conv_last)

    def forward(self, feats: Tensor, lq: Tensor) -> Tensor:  # noqa: D102
        x = feats
        for up in self.ups:
            x = self.act(up(x))
        x = self.conv_last(self.act(self.conv_hr(x)))
        base = F.interpolate(lq, scale_factor=self.scale, mode='bilinear', align_corners=False)
        return x + base
