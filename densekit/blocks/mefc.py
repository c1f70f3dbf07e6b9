"""MEFC: DRSformer's mixture-of-experts feature compensator (CNN experts routed per image).

A router (global average pooling, Linear(C, 2 S E), ReLU, Linear(2 S E, S E), softmax over the
E experts) gives each of the ``steps`` S a weight per expert. After a 1x1 conv + ReLU, each
step runs all experts, scales their outputs by the router weights, concatenates them, fuses
with 1x1 conv + ReLU and adds a residual (followed by ReLU). The eight experts are separable
convs (1, 3, 5, 7), dilated depthwise-separable convs (3, 5, 7 with dilation 2) and 3x3 average
pooling.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from densekit.errors import positive_int
from densekit.layers import LayerFactory

__all__ = ['EXPERTS', 'MEFC', 'build_expert']

_LAYERS = LayerFactory(2)

EXPERTS = ('sep1', 'sep3', 'sep5', 'sep7', 'dil3', 'dil5', 'dil7', 'avg3')


def build_expert(name: str, channels: int) -> nn.Module:
    """One expert: ``'sepK'``, ``'dilK'`` (dilation 2) or ``'avg3'``; keeps ``(N, C, H, W)``."""
    if name == 'avg3':
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    kind, size = name[:3], name[3:]
    if kind not in ('sep', 'dil') or not size.isdigit() or int(size) % 2 == 0:
        raise ValueError(f"expert must be 'sepK', 'dilK' (odd K) or 'avg3', got {name!r}")
    k, c = int(size), channels
    if kind == 'sep':
        return nn.Sequential(
            _LAYERS.conv(c, c, k, padding=k // 2, groups=c, bias=False),
            _LAYERS.conv(c, c, 1, bias=False), nn.ReLU(),
            _LAYERS.conv(c, c, k, padding=k // 2, groups=c, bias=False),
            _LAYERS.conv(c, c, 1, bias=False))
    return nn.Sequential(
        _LAYERS.conv(c, c, k, padding=k - 1, dilation=2, groups=c, bias=False),
        _LAYERS.conv(c, c, 1, bias=False))


class _Step(nn.Module):
    def __init__(self, channels: int, experts: Sequence[str]) -> None:
        super().__init__()
        self.experts = nn.ModuleList(build_expert(e, channels) for e in experts)
        self.fuse = nn.Sequential(
            _LAYERS.conv(channels * len(experts), channels, 1, bias=False), nn.ReLU())

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:  # weights: (N, E)
        outs = [expert(x) * weights[:, i].view(-1, 1, 1, 1)
                for i, expert in enumerate(self.experts)]
        return self.fuse(torch.cat(outs, dim=1))


class MEFC(nn.Module):
    """Mixture-of-experts feature compensator.

    Args:
        channels: Feature channels C.
        steps: Routed steps S (4).
        experts: Expert names (see :data:`EXPERTS`).

    Shape:
        ``(N, C, H, W)`` -> same; e.g. (2, 48, 64, 64) -> (2, 48, 64, 64).
    """

    def __init__(self, channels: int, steps: int = 4, experts: Sequence[str] = EXPERTS) -> None:
        super().__init__()
        positive_int(channels, 'channels')
        positive_int(steps, 'steps')
        if not experts:
            raise ValueError('experts must not be empty')
        self.steps, self.num_experts = steps, len(experts)
        routes = steps * len(experts)
        self.router = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                    nn.Linear(channels, routes * 2), nn.ReLU(),
                                    nn.Linear(routes * 2, routes))
        self.pre = nn.Sequential(_LAYERS.conv(channels, channels, 1, bias=False), nn.ReLU())
        self.layers = nn.ModuleList(_Step(channels, experts) for _ in range(steps))
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        weights = self.router(x).view(-1, self.steps, self.num_experts).softmax(dim=-1)
        s = self.pre(x)
        for i, layer in enumerate(self.layers):
            s = self.act(s + layer(s, weights[:, i]))
        return s
