"""RapidNet backbone (Munir et al., "RapidNet: Multi-Level Dilated Convolution Based Mobile
Backbone"), 2D (NCHW) or 3D (NCDHW).

A pure CNN pyramid (strides 4, 8, 16, 32): a stem of two stride-2 3x3 conv + BN + GELU, then
four stages, each after the first starting with a stride-2 3x3 conv + BN. A stage holds
``depth - mldc`` inverted-residual blocks followed by ``mldc`` MLDC blocks:

* **Inverted residual**: ``x + s * (1x1 (4x) + BN + GELU -> depthwise 3x3 + BN + GELU -> 1x1 +
  BN)(x)``, with a per-channel layer scale ``s`` (1e-5 at init).
* **MLDC block** (multi-level dilated convolution + large-kernel FFN), two residual steps with
  their own layer scales:

  - mixer: a re-parameterisable conditional positional encoding ``x + dwconv7x7(x)`` (one 7x7
    depthwise conv after :meth:`RapidNet.switch_to_deploy`), 1x1 conv + BN, then two *parallel*
    full 3x3 convs with dilations 2 and 3 (+ BN + GELU each, summed: short- and long-range
    features of one input), then 1x1 conv + BN;
  - FFN: depthwise 7x7 + BN, 1x1 expand (4x) + BN + GELU, 1x1 project + BN.

Archs (depths = inverted-residual + MLDC blocks per stage, as the released models):

======  ==============  ===============  ==================
arch    depths          MLDC blocks      widths
======  ==============  ===============  ==================
tiny    2-2-8-4         0-0-2-2          32-64-112-224
small   3-3-12-6        0-0-3-3          32-64-112-224
medium  3-3-12-6        0-0-3-3          32-64-160-320
base    3-3-12-6        0-0-3-3          64-128-224-416
======  ==============  ===============  ==================

Odd input sizes: every downsampling is a 3x3 stride-2 conv with padding 1 (``ceil`` halving).

Example:
    >>> net = RapidNet('tiny')
    >>> [tuple(f.shape) for f in net(torch.rand(1, 3, 64, 64))]
    [(1, 32, 16, 16), (1, 64, 8, 8), (1, 112, 4, 4), (1, 224, 2, 2)]
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Sequence, Union

import torch
from mmcv.cnn.bricks import DropPath
from torch import Tensor, nn

from densekit.backbones.base import PyramidBackbone
from densekit.errors import positive_ints
from densekit.layers import ConvNormAct, LayerFactory
from densekit.registry import MODELS

__all__ = ['RapidNet', 'InvertedResidualBlock', 'MLDCBlock', 'ConvPosEnc']

_BN = dict(type='BN')
_GELU = dict(type='GELU')


def _scale(x: Tensor, scale: nn.Parameter) -> Tensor:
    return x * scale.view((1, -1) + (1,) * (x.dim() - 2))


class ConvPosEnc(nn.Module):
    """Conditional positional encoding ``x + dwconv_k(x)``, re-parameterisable into one conv."""

    def __init__(self, spatial_dims: int, channels: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.spatial_dims, self.kernel_size = spatial_dims, kernel_size
        self.conv = LayerFactory(spatial_dims).conv(channels, channels, kernel_size,
                                                    padding=kernel_size // 2, groups=channels)
        self.deploy = False

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> same shape."""
        return self.conv(x) if self.deploy else x + self.conv(x)

    @torch.no_grad()
    def switch_to_deploy(self) -> ConvPosEnc:
        """Fold the identity into the kernel centre (in place)."""
        if not self.deploy:
            centre = (slice(None), 0) + (self.kernel_size // 2,) * self.spatial_dims
            self.conv.weight[centre] += 1
            self.deploy = True
        return self


class InvertedResidualBlock(nn.Module):
    """``x + s * (pw expand -> dw 3x3 -> pw project)(x)`` (early-stage block)."""

    def __init__(self, spatial_dims: int, dim: int, ratio: int = 4, drop_path: float = 0.0,
                 layer_scale: float = 1e-5) -> None:
        super().__init__()
        hidden = dim * ratio
        self.expand = ConvNormAct(spatial_dims, dim, hidden, 1, bias=True, norm_cfg=_BN,
                                  act_cfg=_GELU)
        self.dw = ConvNormAct(spatial_dims, hidden, hidden, 3, padding=1, groups=hidden,
                              bias=True, norm_cfg=_BN, act_cfg=_GELU)
        self.project = ConvNormAct(spatial_dims, hidden, dim, 1, bias=True, norm_cfg=_BN,
                                   act_cfg=None)
        self.layer_scale = nn.Parameter(torch.full((dim,), float(layer_scale)))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> same shape."""
        y = self.project(self.dw(self.expand(x)))
        return x + self.drop_path(_scale(y, self.layer_scale))


class MLDCBlock(nn.Module):
    """Multi-level dilated convolution mixer + large-kernel FFN (late-stage block).

    Args:
        spatial_dims: 2 or 3.
        dim: Channels.
        dilations: Dilations of the parallel full 3x3 convs (2 and 3 in the paper).
        ffn_ratio: FFN expansion.
        kernel_size: Kernel of the positional encoding and of the FFN's depthwise conv.
        drop_path: Stochastic depth rate.
        layer_scale: Initial value of both layer scales.
    """

    def __init__(self, spatial_dims: int, dim: int, dilations: Sequence[int] = (2, 3),
                 ffn_ratio: int = 4, kernel_size: int = 7, drop_path: float = 0.0,
                 layer_scale: float = 1e-5) -> None:
        super().__init__()
        positive_ints(dilations, 'dilations')
        self.pos_enc = ConvPosEnc(spatial_dims, dim, kernel_size)
        self.fc1 = ConvNormAct(spatial_dims, dim, dim, 1, bias=True, norm_cfg=_BN, act_cfg=None)
        self.dilated = nn.ModuleList(
            ConvNormAct(spatial_dims, dim, dim, 3, padding=d, dilation=d, bias=True,
                        norm_cfg=_BN, act_cfg=_GELU) for d in dilations)
        self.fc2 = ConvNormAct(spatial_dims, dim, dim, 1, bias=True, norm_cfg=_BN, act_cfg=None)
        hidden = dim * ffn_ratio
        self.ffn = nn.Sequential(
            ConvNormAct(spatial_dims, dim, dim, kernel_size, padding=kernel_size // 2,
                        groups=dim, norm_cfg=_BN, act_cfg=None),
            ConvNormAct(spatial_dims, dim, hidden, 1, bias=True, norm_cfg=_BN, act_cfg=_GELU),
            ConvNormAct(spatial_dims, hidden, dim, 1, bias=True, norm_cfg=_BN, act_cfg=None))
        self.layer_scale_mixer = nn.Parameter(torch.full((dim,), float(layer_scale)))
        self.layer_scale_ffn = nn.Parameter(torch.full((dim,), float(layer_scale)))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def mixer(self, x: Tensor) -> Tensor:
        """Positional encoding, 1x1, parallel dilated convs (summed), 1x1."""
        y = self.fc1(self.pos_enc(x))
        multi = self.dilated[0](y)
        for conv in self.dilated[1:]:
            multi = multi + conv(y)
        return self.fc2(multi)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> same shape."""
        x = x + self.drop_path(_scale(self.mixer(x), self.layer_scale_mixer))
        return x + self.drop_path(_scale(self.ffn(x), self.layer_scale_ffn))


@MODELS.register_module()
class RapidNet(PyramidBackbone):
    """RapidNet pyramid backbone (see the module docstring).

    Args:
        arch: ``'tiny'``, ``'small'``, ``'medium'``, ``'base'`` or a dict with ``depths``,
            ``widths`` and optionally ``mldc_blocks`` (MLDC blocks at the end of each stage),
            ``dilations``, ``ffn_ratio`` and ``kernel_size``.
        in_channels: Input channels.
        out_indices: Returned stages.
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        frozen_stages: Freeze the stem and the first ``frozen_stages`` stages.
        norm_eval: Keep BatchNorms in eval mode while training.
        drop_path_rate: Stochastic depth, rising linearly over the blocks.
        layer_scale: Initial layer-scale value of every residual branch.
        init_cfg: mmengine init config.

    Raises:
        ValueError: an unknown ``arch`` (naming it and the valid ones), ``mldc_blocks`` that
            do not fit the depths, or bad arguments.
    """

    deploy_units = (ConvPosEnc,)  # switch_to_deploy() (PyramidBackbone) merges these
    arch_settings = {
        'tiny': dict(depths=[2, 2, 8, 4], widths=[32, 64, 112, 224], mldc_blocks=[0, 0, 2, 2]),
        'small': dict(depths=[3, 3, 12, 6], widths=[32, 64, 112, 224]),
        'medium': dict(depths=[3, 3, 12, 6], widths=[32, 64, 160, 320]),
        'base': dict(depths=[3, 3, 12, 6], widths=[64, 128, 224, 416]),
    }
    arch_defaults: Dict[str, Any] = {'mldc_blocks': [0, 0, 3, 3], 'dilations': (2, 3),
                                     'ffn_ratio': 4, 'kernel_size': 7}
    stem_stride = 4

    def __init__(self, arch: Union[str, dict] = 'tiny', *, in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3), spatial_dims: int = 2,
                 frozen_stages: int = -1, norm_eval: bool = False, drop_path_rate: float = 0.0,
                 layer_scale: float = 1e-5, init_cfg: Any = None) -> None:
        super().__init__(arch, in_channels=in_channels, out_indices=out_indices,
                         spatial_dims=spatial_dims, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, init_cfg=init_cfg)
        mldc = list(self.arch['mldc_blocks'])
        if len(mldc) != self.num_stages or any(
                not isinstance(m, int) or not 0 <= m <= d for m, d in zip(mldc, self.depths)):
            raise ValueError(f'arch mldc_blocks={mldc!r} needs one int per stage in '
                             f'[0, depth] (depths {self.depths})')
        self.mldc_blocks = mldc
        sd, widths = self.spatial_dims, self.widths
        ratio, kernel = self.arch['ffn_ratio'], self.arch['kernel_size']
        self.stem = nn.Sequential(
            ConvNormAct(sd, in_channels, widths[0] // 2, 3, stride=2, padding=1, bias=True,
                        norm_cfg=_BN, act_cfg=_GELU),
            ConvNormAct(sd, widths[0] // 2, widths[0], 3, stride=2, padding=1, bias=True,
                        norm_cfg=_BN, act_cfg=_GELU))
        rates = self.drop_path_rates(drop_path_rate)
        stages: List[nn.Module] = []
        for i, width in enumerate(widths):
            parts: Dict[str, nn.Module] = OrderedDict()
            if i > 0:
                parts['downsample'] = ConvNormAct(sd, widths[i - 1], width, 3, stride=2,
                                                  padding=1, bias=True, norm_cfg=_BN,
                                                  act_cfg=None)
            local = self.depths[i] - mldc[i]
            blocks: List[nn.Module] = [
                InvertedResidualBlock(sd, width, ratio, rate, layer_scale)
                for rate in rates[i][:local]]
            blocks += [MLDCBlock(sd, width, self.arch['dilations'], ratio, kernel, rate,
                                 layer_scale) for rate in rates[i][local:]]
            parts['blocks'] = nn.Sequential(*blocks)
            stages.append(nn.Sequential(parts))
        self.stages = nn.ModuleList(stages)
        self.freeze_stages()


