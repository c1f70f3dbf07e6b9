"""SCNet's parameter-free spatial shift (Wu et al., 2023) and the 1x1 shift block built on it.

:class:`Shift8` moves eight channel groups by one pixel in the eight compass directions (zero
padding); a shift block is 1x1 conv, Shift8, ReLU, 1x1 conv plus the identity.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from densekit.errors import positive_int
from densekit.layers import LayerFactory

__all__ = ['Shift8', 'ShiftBlock', 'small_kaiming_init']

_LAYERS = LayerFactory(2)

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
        self.stride = positive_int(stride, 'stride')

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


def small_kaiming_init(*convs: nn.Conv2d, scale: float = 0.1) -> None:
    """Kaiming-normal weights scaled by ``scale`` and zero biases (SCNet's initialisation)."""
    for conv in convs:
        nn.init.kaiming_normal_(conv.weight)
        conv.weight.data.mul_(scale)
        nn.init.zeros_(conv.bias)


class ShiftBlock(nn.Module):
    """SCNet block: ``x + conv1x1(relu(shift8(conv1x1(x))))``.

    Shape:
        ``(N, C, H, W)`` -> same; ``C`` must be a multiple of 8.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _LAYERS.conv(channels, channels, 1)
        self.shift = Shift8()
        self.act = nn.ReLU(inplace=True)
        self.conv2 = _LAYERS.conv(channels, channels, 1)
        small_kaiming_init(self.conv1, self.conv2)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return x + self.conv2(self.act(self.shift(self.conv1(x))))
