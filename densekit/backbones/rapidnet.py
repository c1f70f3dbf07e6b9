"""RapidNet backbone (Munir et al., "RapidNet: Multi-Level Dilated Convolution Based Mobile
Backbone"), 2D (NCHW) or 3D (NCDHW).

A pure CNN pyramid (strides 4, 8, 16, 32): a stem of two stride-2 3x3 conv + BN + GELU, then
four stages, each after the first starting with a stride-2 3x3 conv + BN.

* **Early stages (0, 1): RepDW blocks.** ``x + RepDW(x)`` with a re-parameterisable depthwise
  mixer (depthwise 3x3 + BN and depthwise 1x1 + BN in parallel, one 3x3 conv after
  :meth:`RapidNet.switch_to_deploy`; :class:`~densekit.blocks.DilatedReparamBlock`), then
  ``x + FFN(x)`` (1x1 expand + BN + GELU, 1x1 project + BN).
* **Late stages (2, 3): multi-level dilated convolution (MLDC) blocks.** The mixer runs two
  depthwise 3x3 convs with dilations 2 and 3 (receptive fields 5 and 7) in parallel, concatenates
  them with the input (short- and long-range features side by side) and fuses the three with a
  1x1 conv + BN + GELU; the FFN has a large depthwise kernel (1x1 expand + BN + GELU,
  depthwise 7x7 + BN, 1x1 project + BN). Both are residual.

The block structure follows the paper's description (MLDC with dilations 2 and 3, a
large-kernel FFN, re-parameterisable depthwise convs in the early stages); the exact widths and
depths of the released models were not available here, so the arch table below is this
implementation's sizing of the Ti / S / M / B family, not a copy of the paper's table:

======  =============  ===================
arch    depths         widths
======  =============  ===================
tiny    2-2-6-2        48-96-192-384
small   3-3-9-3        64-128-256-512
medium  3-3-12-3       64-128-320-512
base    3-3-15-3       80-160-384-768
======  =============  ===================

Example:
    >>> net = RapidNet('tiny')
    >>> [tuple(f.shape) for f in net(torch.rand(1, 3, 64, 64))]
    [(1, 48, 16, 16), (1, 96, 8, 8), (1, 192, 4, 4), (1, 384, 2, 2)]
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn.bricks import DropPath
from torch import Tensor, nn

from densekit.backbones.base import PyramidBackbone
from densekit.blocks.reparam import DilatedReparamBlock
from densekit.layers import ConvNormAct
from densekit.registry import MODELS

__all__ = ['RapidNet', 'RepDWBlock', 'MLDCBlock']

_BN = dict(type='BN')
_GELU = dict(type='GELU')


class _FFN(nn.Module):
    """1x1 expand + BN + GELU, optional depthwise ``k`` conv + BN, 1x1 project + BN."""

    def __init__(self, spatial_dims: int, dim: int, ratio: int, dw_kernel: Optional[int]) -> None:
        super().__init__()
        hidden = dim * ratio
        self.expand = ConvNormAct(spatial_dims, dim, hidden, 1, norm_cfg=_BN, act_cfg=_GELU)
        self.dw = ConvNormAct(spatial_dims, hidden, hidden, dw_kernel, padding=dw_kernel // 2,
                              groups=hidden, norm_cfg=_BN, act_cfg=None) \
            if dw_kernel else None
        self.project = ConvNormAct(spatial_dims, hidden, dim, 1, norm_cfg=_BN, act_cfg=None)

    def forward(self, x: Tensor) -> Tensor:
        y = self.expand(x)
        if self.dw is not None:
            y = self.dw(y)
        return self.project(y)


class RepDWBlock(nn.Module):
    """``x + RepDW(x)``, then ``x + FFN(x)`` (early-stage block)."""

    def __init__(self, spatial_dims: int, dim: int, ffn_ratio: int = 4,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.mixer = DilatedReparamBlock(spatial_dims, dim, 3, kernel_sizes=(1,), dilations=(1,))
        self.ffn = _FFN(spatial_dims, dim, ffn_ratio, None)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> same shape."""
        x = x + self.drop_path(self.mixer(x))
        return x + self.drop_path(self.ffn(x))


class MLDCBlock(nn.Module):
    """Multi-level dilated convolution mixer + large-kernel FFN (late-stage block).

    Args:
        spatial_dims: 2 or 3.
        dim: Channels.
        dilations: Dilations of the parallel depthwise 3x3 convs (2 and 3 in the paper).
        ffn_ratio: FFN expansion.
        ffn_kernel: Depthwise kernel inside the FFN.
        drop_path: Stochastic depth rate.
    """

    def __init__(self, spatial_dims: int, dim: int, dilations: Sequence[int] = (2, 3),
                 ffn_ratio: int = 4, ffn_kernel: int = 7, drop_path: float = 0.0) -> None:
        super().__init__()
        if not dilations or any(not isinstance(d, int) or d < 1 for d in dilations):
            raise ValueError(f'dilations must be positive ints, got {dilations!r}')
        self.dilated = nn.ModuleList(
            ConvNormAct(spatial_dims, dim, dim, 3, padding=d, dilation=d, groups=dim,
                        norm_cfg=_BN, act_cfg=None) for d in dilations)
        self.fuse = ConvNormAct(spatial_dims, dim * (len(dilations) + 1), dim, 1, norm_cfg=_BN,
                                act_cfg=_GELU)
        self.ffn = _FFN(spatial_dims, dim, ffn_ratio, ffn_kernel)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> same shape."""
        mixed = self.fuse(torch.cat([x] + [conv(x) for conv in self.dilated], dim=1))
        x = x + self.drop_path(mixed)
        return x + self.drop_path(self.ffn(x))


@MODELS.register_module()
class RapidNet(PyramidBackbone):
    """RapidNet pyramid backbone (see the module docstring).

    Args:
        arch: ``'tiny'``, ``'small'``, ``'medium'``, ``'base'`` or a dict with ``depths``,
            ``widths`` and optionally ``mldc_stages`` (stage indices using MLDC blocks),
            ``dilations``, ``ffn_ratio`` and ``ffn_kernel``.
        in_channels: Input channels.
        out_indices: Returned stages.
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        frozen_stages: Freeze the stem and the first ``frozen_stages`` stages.
        norm_eval: Keep BatchNorms in eval mode while training.
        drop_path_rate: Stochastic depth, rising linearly over the blocks.
        init_cfg: mmengine init config.

    Raises:
        ValueError: an unknown ``arch`` (naming it and the valid ones) or bad arguments.
    """

    arch_settings = {
        'tiny': dict(depths=[2, 2, 6, 2], widths=[48, 96, 192, 384]),
        'small': dict(depths=[3, 3, 9, 3], widths=[64, 128, 256, 512]),
        'medium': dict(depths=[3, 3, 12, 3], widths=[64, 128, 320, 512]),
        'base': dict(depths=[3, 3, 15, 3], widths=[80, 160, 384, 768]),
    }
    arch_defaults: Dict[str, Any] = {'mldc_stages': (2, 3), 'dilations': (2, 3),
                                     'ffn_ratio': 4, 'ffn_kernel': 7}
    stem_stride = 4

    def __init__(self, arch: Union[str, dict] = 'tiny', *, in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3), spatial_dims: int = 2,
                 frozen_stages: int = -1, norm_eval: bool = False, drop_path_rate: float = 0.0,
                 init_cfg: Any = None) -> None:
        super().__init__(arch, in_channels=in_channels, out_indices=out_indices,
                         spatial_dims=spatial_dims, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, init_cfg=init_cfg)
        mldc = tuple(self.arch['mldc_stages'])
        if any(not isinstance(i, int) or not 0 <= i < self.num_stages for i in mldc):
            raise ValueError(f'arch mldc_stages={mldc!r} must hold stage indices in '
                             f'[0, {self.num_stages - 1}]')
        self.mldc_stages = mldc
        sd, widths = self.spatial_dims, self.widths
        ratio, kernel = self.arch['ffn_ratio'], self.arch['ffn_kernel']
        self.stem = nn.Sequential(
            ConvNormAct(sd, in_channels, widths[0] // 2, 3, stride=2, padding=1, norm_cfg=_BN,
                        act_cfg=_GELU),
            ConvNormAct(sd, widths[0] // 2, widths[0], 3, stride=2, padding=1, norm_cfg=_BN,
                        act_cfg=_GELU))
        rates = self.drop_path_rates(drop_path_rate)
        stages: List[nn.Module] = []
        for i, width in enumerate(widths):
            parts: Dict[str, nn.Module] = OrderedDict()
            if i > 0:
                parts['downsample'] = ConvNormAct(sd, widths[i - 1], width, 3, stride=2,
                                                  padding=1, norm_cfg=_BN, act_cfg=None)
            if i in mldc:
                blocks = [MLDCBlock(sd, width, self.arch['dilations'], ratio, kernel, r)
                          for r in rates[i]]
            else:
                blocks = [RepDWBlock(sd, width, ratio, r) for r in rates[i]]
            parts['blocks'] = nn.Sequential(*blocks)
            stages.append(nn.Sequential(parts))
        self.stages = nn.ModuleList(stages)
        self.freeze_stages()

    @property
    def total_stride(self) -> Tuple[int, ...]:
        """Per-axis stride of the deepest returned level."""
        return (max(self.strides),) * self.spatial_dims

    @torch.no_grad()
    def switch_to_deploy(self) -> RapidNet:
        """Merge the RepDW branches and fold every BatchNorm (in place, eval mode)."""
        self.eval()
        for module in self.modules():
            if isinstance(module, DilatedReparamBlock):
                module.switch_to_deploy()
        for module in self.modules():
            if isinstance(module, ConvNormAct):
                module.fuse()
        return self
