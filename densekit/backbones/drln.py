"""DRLN body (Anwar & Barnes, "Densely Residual Laplacian Super-Resolution", TPAMI 2020).

Head conv 3 -> C, then a cascade of dense residual Laplacian modules (DRLMs) in groups
(paper: 6 groups of 3, 3, 3, 3, 4, 4 = 20 DRLMs at C = 64). Inside a group the input and every
DRLM output so far are concatenated and compressed by a 3x3 conv + ReLU (``k * C -> C``) that
feeds the next DRLM; the group output is the last compressed map plus the group input (medium
skip); the body output adds the head features (long skip). The reconstruction head is
:class:`~densekit.heads.reconstruction.PixelShuffleHead` with ``act=True``
(conv, ReLU, PixelShuffle per x2 step, then a 3x3 conv to RGB), and the DIV2K mean shift lives
in the data preprocessor, so DRLN = ``DRLNBody`` + ``PixelShuffleHead(act=True)``.

A DRLM is three residual units with dense growth (C -> 2C -> 4C -> 8C channels by
concatenation), a 1x1 compression 8C -> C + ReLU and :class:`LaplacianAttention`; the block
output is the attention-scaled map (no identity around the block).

``official_wiring=True`` (default) reproduces the released code's data flow, which differs
from the paper's figure in two places: from the second group on, the dense concatenation starts
with the previous group's last compressed map (not the group's input), and the second DRLM of
the second group is fed the group input instead of the first compressed map. Both change no
parameter count; ``False`` gives the clean form (concatenation starts with the group input,
every DRLM after the first is fed the latest compressed map).

Parameters at C = 64 with the paper's groups: 34.43M (x2), 34.61M (x3), 34.58M (x4) including
the head.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor, nn

from densekit.backbones.contract import FullResolutionBody
from densekit.errors import ArgumentError, positive_int
from densekit.layers import ConvNormAct
from densekit.registry import MODELS

__all__ = ['DRLNBody', 'LaplacianAttention', 'DRLM', 'DRLN_GROUPS']

#: DRLMs per cascade group in the paper (20 in all).
DRLN_GROUPS = (3, 3, 3, 3, 4, 4)

_RELU = dict(type='ReLU')



def _conv(in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1,
          act: bool = True) -> ConvNormAct:
    """A 'same'-padded conv with bias, optionally followed by ReLU."""
    return ConvNormAct(2, in_channels, out_channels, kernel_size,
                       padding=dilation * (kernel_size // 2), dilation=dilation, bias=True,
                       act_cfg=_RELU if act else None)


class LaplacianAttention(nn.Module):
    """Channel attention with parallel dilated branches ("Laplacian pyramid" of dilations).

    Global average pooling, then one 3x3 conv ``C -> C // reduction`` + ReLU per dilation
    (padding = dilation), the branches concatenated, a 3x3 conv to ``C`` and a sigmoid; the
    input is rescaled per channel. As in the released code the convs run on the 1x1 pooled map
    with zero padding, so only their centre taps see data: the result equals a three-branch
    squeeze-and-excitation with the centre weights, whatever the dilations.

    Shape:
        ``(N, C, H, W)`` -> same; e.g. (2, 64, 9, 7) -> (2, 64, 9, 7).
    """

    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, channels: int, reduction: int = 16,
                 dilations: Sequence[int] = (3, 5, 7)) -> None:
        super().__init__()
        positive_int(channels, 'channels')
        positive_int(reduction, 'reduction')
        if channels % reduction:
            raise ArgumentError(f'reduction={reduction} must divide channels={channels}')
        if isinstance(dilations, (str, bytes)) or not isinstance(dilations, Sequence) \
                or not dilations:
            raise ArgumentError(f'dilations must be a non-empty sequence of positive ints, '
                                f'got {dilations!r}')
        for d in dilations:
            positive_int(d, 'dilations item')
        squeezed = channels // reduction
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.branches = nn.ModuleList(_conv(channels, squeezed, 3, d) for d in dilations)
        self.fuse = ConvNormAct(2, squeezed * len(dilations), channels, 3, padding=1, bias=True,
                                act_cfg=dict(type='Sigmoid'))

    def weights(self, x: Tensor) -> Tensor:
        """The per-channel scales in (0, 1), shape ``(N, C, 1, 1)``."""
        pooled = self.pool(x)
        return self.fuse(torch.cat([branch(pooled) for branch in self.branches], dim=1))

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return x * self.weights(x)


class _ResidualUnit(nn.Module):
    """``relu(x + conv(relu(conv(x))))`` at constant width (no normalisation)."""

    per_sample_eval = True

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv(channels, channels)
        self.conv2 = _conv(channels, channels, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.act(x + self.conv2(self.conv1(x)))


class DRLM(nn.Module):
    """Dense residual Laplacian module: three densely grown residual units, 1x1 compression
    ``8C -> C`` + ReLU and :class:`LaplacianAttention`.

    Shape:
        ``(N, C, H, W)`` -> same.
    """

    per_sample_eval = True

    def __init__(self, channels: int, reduction: int = 16,
                 dilations: Sequence[int] = (3, 5, 7)) -> None:
        super().__init__()
        self.units = nn.ModuleList(_ResidualUnit(channels * 2 ** i) for i in range(3))
        self.compress = _conv(channels * 8, channels, 1)
        self.attention = LaplacianAttention(channels, reduction, dilations)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        dense = x
        for unit in self.units:
            dense = torch.cat([dense, unit(dense)], dim=1)
        return self.attention(self.compress(dense))


class _Group(nn.Module):
    """A cascade group: DRLMs with dense concatenation and 3x3 compression convs."""

    per_sample_eval = True

    def __init__(self, channels: int, num_blocks: int, reduction: int,
                 dilations: Sequence[int]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(DRLM(channels, reduction, dilations)
                                    for _ in range(num_blocks))
        self.compress = nn.ModuleList(_conv(channels * (i + 2), channels)
                                      for i in range(num_blocks))

    def forward(self, x: Tensor, start: Tensor, feed_input_to: Tuple[int, ...] = ()
                ) -> Tensor:
        """Last compressed map of the group.

        Args:
            x: Group input (fed to the first DRLM, and to those in ``feed_input_to``).
            start: First map of the dense concatenation.
            feed_input_to: Indices of further DRLMs fed ``x`` instead of the latest map.
        """
        dense, feed = start, x
        for i, (block, compress) in enumerate(zip(self.blocks, self.compress)):
            dense = torch.cat([dense, block(x if i in feed_input_to else feed)], dim=1)
            feed = compress(dense)
        return feed


@MODELS.register_module()
class DRLNBody(FullResolutionBody, nn.Module):
    """DRLN feature extractor: head conv, cascaded DRLM groups, long skip.

    Args:
        in_channels: Image channels.
        channels: Feature channels C (64).
        groups: DRLMs per cascade group (paper: ``(3, 3, 3, 3, 4, 4)``).
        reduction: Channel reduction of the Laplacian attention branches (16).
        dilations: Dilations of the attention branches (3, 5, 7).
        official_wiring: Reproduce the released code's data flow (module docstring).

    Shape:
        ``(N, in, H, W)`` -> ``(N, C, H, W)``; e.g. (1, 3, 23, 17) -> (1, 64, 23, 17).

    Example:
        >>> body = DRLNBody(channels=16, groups=(1, 2), reduction=4)
        >>> body(torch.randn(1, 3, 9, 7)).shape
        torch.Size([1, 16, 9, 7])
    """

    per_sample_eval = True

    def __init__(self, in_channels: int = 3, channels: int = 64,
                 groups: Sequence[int] = DRLN_GROUPS, reduction: int = 16,
                 dilations: Sequence[int] = (3, 5, 7), official_wiring: bool = True) -> None:
        super().__init__()
        positive_int(in_channels, 'in_channels')
        positive_int(channels, 'channels')
        if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence) or not groups:
            raise ArgumentError(f'groups must be a non-empty sequence of DRLMs per group, got '
                                f'{groups!r}')
        for count in groups:
            positive_int(count, 'groups item')
        if not isinstance(official_wiring, bool):
            raise ArgumentError(f'official_wiring must be a bool, got {official_wiring!r}')
        self.head = _conv(in_channels, channels, act=False)
        self.groups = nn.ModuleList(_Group(channels, n, reduction, dilations) for n in groups)
        self.official_wiring = official_wiring
        self.out_channels = (channels,)
        # PyTorch's default conv init, as the released code: ConvNormAct's Kaiming fan-out init
        # doubles the activation variance at every residual unit of this deep, norm-free body.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                module.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        feat = self.head(x)
        group_in, start = feat, feat
        for index, group in enumerate(self.groups):
            quirk = (1,) if self.official_wiring and index == 1 else ()
            last = group(group_in, start, quirk)
            start = last if self.official_wiring else None
            group_in = last + group_in
            if start is None:
                start = group_in
        return group_in + feat
