"""Full-resolution skip levels for U-Net decoders on top of a stride-4 pyramid backbone.

ConvNeXt-style backbones start with a k4 s4 patchify stem, so their finest level is at stride
4, while a U-Net decoder (``UNetDecoderHead`` of the medical 3D task) segments at the input
resolution from a pyramid that starts at stride 1. :class:`HighResSkips` wraps such a backbone
and prepends light convolutional levels computed from the input itself (stride 1, 2, ...,
up to the backbone's first stride), so the decoder gets fine detail the backbone never sees.
"""
from __future__ import annotations

from typing import Any, List, Sequence, Tuple, Union

from mmengine.model import BaseModule
from torch import Tensor, nn

from densekit.backbones.contract import ShapeContract, as_stride_tuples
from densekit.errors import positive_ints
from densekit.layers import ConvNormAct
from densekit.registry import MODELS

__all__ = ['HighResSkips']


@MODELS.register_module()
class HighResSkips(ShapeContract, BaseModule):
    """A pyramid backbone plus convolutional levels at strides 1, 2, ... below its first level.

    Level ``j`` of the prefix (stride ``2 ** j``) is a 3x3 conv (stride 2 for ``j > 0``, reading
    level ``j - 1``) followed by a 3x3 conv, each with norm and activation. The wrapped
    backbone still sees the original input.

    Args:
        backbone: Config dict or module exposing ``out_channels``, ``strides``,
            ``spatial_dims`` and ``in_channels`` (any :class:`PyramidBackbone`).
        skip_channels: Channels of the prefix levels, finest first; their strides are
            ``1, 2, 4, ...`` and must stay below the backbone's first stride.
        norm_cfg: Norm of the prefix convs (instance norm by default, as the medical U-Nets).
        act_cfg: Activation of the prefix convs.

    Raises:
        ValueError: empty ``skip_channels``, or prefix strides reaching the backbone's first.

    Example:
        >>> net = HighResSkips(dict(type='densekit.ConvNeXt', arch='atto', spatial_dims=3,
        ...                         in_channels=2), skip_channels=(8, 16))
        >>> net.strides, net.out_channels
        ([1, 2, 4, 8, 16, 32], [8, 16, 40, 80, 160, 320])
    """

    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, backbone: Union[dict, nn.Module], skip_channels: Sequence[int] = (16, 32),
                 norm_cfg: Any = dict(type='IN', affine=True),  # noqa: B006
                 act_cfg: Any = dict(type='LeakyReLU', negative_slope=0.01),  # noqa: B006
                 init_cfg: Any = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone) if isinstance(backbone, dict) else backbone
        for attr in ('out_channels', 'strides', 'spatial_dims', 'in_channels'):
            if not hasattr(self.backbone, attr):
                raise ValueError(f'backbone {type(self.backbone).__name__} has no {attr!r}; '
                                 f'HighResSkips needs a pyramid backbone (PyramidBackbone)')
        skip_channels = positive_ints(list(skip_channels), 'skip_channels')
        first = min(self.backbone.strides)
        if 2 ** (len(skip_channels) - 1) >= first:
            raise ValueError(f'skip_channels={skip_channels!r} adds levels up to stride '
                             f'{2 ** (len(skip_channels) - 1)}, but the backbone starts at '
                             f'stride {first}; use at most {first.bit_length() - 1} levels')
        dims = self.backbone.spatial_dims
        self.spatial_dims = dims
        self.in_channels = self.backbone.in_channels
        self.skips = nn.ModuleList()
        prev = self.in_channels
        for j, width in enumerate(skip_channels):
            self.skips.append(nn.Sequential(
                ConvNormAct(dims, prev, width, 3, stride=1 if j == 0 else 2, padding=1,
                            norm_cfg=norm_cfg, act_cfg=act_cfg),
                ConvNormAct(dims, width, width, 3, padding=1, norm_cfg=norm_cfg,
                            act_cfg=act_cfg)))
            prev = width
        self.skip_channels = skip_channels

    @property
    def out_channels(self) -> List[int]:
        """Channels of every returned level (prefix first)."""
        return self.skip_channels + list(self.backbone.out_channels)

    @property
    def strides(self) -> List[int]:
        """Nominal strides of every returned level (prefix first)."""
        return [2 ** j for j in range(len(self.skip_channels))] + list(self.backbone.strides)

    @property
    def out_strides(self) -> Tuple[Tuple[int, ...], ...]:
        """Per-axis strides of every returned level (the shape contract)."""
        return as_stride_tuples(self.strides, self.spatial_dims)

    @property
    def total_stride(self) -> Tuple[int, ...]:
        """Per-axis stride of the deepest level (patch sizes should be multiples of it)."""
        return (max(self.strides),) * self.spatial_dims

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """``(N, C, *spatial)`` -> prefix levels, then the backbone's levels."""
        feats = []
        y = x
        for skip in self.skips:
            y = skip(y)
            feats.append(y)
        return tuple(feats) + tuple(self.backbone(x))
