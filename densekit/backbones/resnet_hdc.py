"""mmseg's ResNetV1c with the hybrid dilated convolution (HDC) schedule of Wang et al.

A dilated stage whose blocks all use the same rate samples the input on a fixed grid and leaves
holes ("gridding"). HDC gives consecutive blocks of a stage a cycle of rates such as (1, 2, 5)
whose receptive fields tile without gaps; the DUC paper uses (1, 2, 3) in res4 and (5, 9, 17)
in res5.
"""
from __future__ import annotations

from typing import Optional, Sequence

from mmseg.models.backbones import ResNetV1c
from torch import nn

from densekit.errors import positive_ints
from densekit.registry import MODELS


@MODELS.register_module()
class ResNetHDC(ResNetV1c):
    """ResNetV1c whose 3x3 convs follow a per-stage cycle of dilation rates.

    Args:
        hdc_dilations: One entry per stage: ``None`` keeps the stage's ``dilations`` setting,
            a sequence of ints is cycled over the stage's blocks (block ``j`` uses
            ``cycle[j % len(cycle)]``). Example: ``(None, None, (1, 2, 3), (5, 9, 17))``.
        **kwargs: mmseg ``ResNetV1c`` arguments (``depth``, ``strides``, ``dilations``, ...).

    Raises:
        ValueError: wrong number of entries or non-positive rates.

    Example:
        >>> net = ResNetHDC(depth=18, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
        ...                 hdc_dilations=(None, None, (1, 2), (2, 5)))
        >>> [o.shape[-1] for o in net(torch.rand(1, 3, 64, 64))]
        [16, 8, 8, 8]
    """

    def __init__(self, hdc_dilations: Optional[Sequence[Optional[Sequence[int]]]] = None,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)
        if hdc_dilations is None:
            hdc_dilations = [None] * self.num_stages
        if len(hdc_dilations) != self.num_stages:
            raise ValueError(f'hdc_dilations needs one entry per stage ({self.num_stages}), got '
                             f'{len(hdc_dilations)}: {tuple(hdc_dilations)!r}')
        self.hdc_dilations = tuple(None if c is None else tuple(c) for c in hdc_dilations)
        for stage, cycle in enumerate(self.hdc_dilations):
            if cycle is None:
                continue
            positive_ints(cycle, f'hdc_dilations[{stage}]')
            layer = getattr(self, self.res_layers[stage])
            for index, block in enumerate(layer):
                rate = cycle[index % len(cycle)]
                for conv in block.modules():
                    if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3):
                        conv.dilation, conv.padding = (rate, rate), (rate, rate)
