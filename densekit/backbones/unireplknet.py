"""UniRepLKNet backbone (Ding et al., "UniRepLKNet: A Universal Perception Large-Kernel ConvNet"),
2D (NCHW) or 3D (NCDHW).

Layout: a stem of two stride-2 3x3 conv + channel LayerNorm (GELU between) to stride 4, then
four stages; each stage after the first starts with a stride-2 3x3 conv + LayerNorm. Every
returned level gets its own LayerNorm (``out_norms``). A block is

``x + drop_path(gamma * FFN(SE(BN(DilatedReparam(x)))))``, with ``FFN = 1x1 conv (4x) -> GELU
-> GRN -> 1x1 conv + BN``,

where the depthwise conv is a :class:`~densekit.blocks.DilatedReparamBlock` (a ``K`` conv
with parallel dilated small-kernel branches) for ``K >= 7`` and a plain depthwise conv for
``K = 3`` or ``5``, SE is a channel
squeeze-excitation (reduction 4) and GRN is ConvNeXt-V2's global response normalisation.
:meth:`UniRepLKNet.switch_to_deploy` merges every branch and BatchNorm into the convs (and the
layer scale into the last 1x1 conv): the result computes the same function in eval mode.

Archs (depths / widths as in the paper; 13 = large kernel, 3 = small):

=======  ============  ====================  =========================================
arch     depths        widths                kernels per stage
=======  ============  ====================  =========================================
atto     2-2-6-2       40-80-160-320         3 / 13 / 13 / 13
femto    2-2-6-2       48-96-192-384         3 / 13 / 13 / 13
pico     2-2-6-2       64-128-256-512        3 / 13 / 13 / 13
nano     2-2-8-2       80-160-320-640        3 / 13 / 13 / 13
tiny     3-3-18-3      80-160-320-640        3 / 13 / (13, 3) x 9 / 13
small    3-3-27-3      96-192-384-768        3 / 13 / (13, 3, 3) x 9 / 13
base     3-3-27-3      128-256-512-1024      3 / 13 / (13, 3, 3) x 9 / 13
=======  ============  ====================  =========================================

Odd input sizes: every downsampling is a 3x3 stride-2 conv with padding 1, so each level has
``ceil(size / 2)`` of the previous one (97 x 131 -> 25 x 33 at stride 4).

Example:
    >>> net = UniRepLKNet('atto')
    >>> [tuple(f.shape) for f in net(torch.rand(1, 3, 64, 64))]
    [(1, 40, 16, 16), (1, 80, 8, 8), (1, 160, 4, 4), (1, 320, 2, 2)]
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from mmcv.cnn.bricks import DropPath
from torch import Tensor, nn

from densekit.backbones.base import PyramidBackbone
from densekit.blocks.recalibration import ChannelSE
from densekit.blocks.reparam import DilatedReparamBlock
from densekit.layers import ChannelLayerNorm, ConvNormAct, LayerFactory, fuse_conv_bn
from densekit.layers.norm import GlobalResponseNorm
from densekit.registry import MODELS

__all__ = ['UniRepLKNet', 'UniRepLKNetBlock', 'GRN']

_KERNELS_AFP = ((3, 3), (13, 13), (13,) * 6, (13, 13))
_KERNELS_N = ((3, 3), (13, 13), (13,) * 8, (13, 13))
_KERNELS_T = ((3,) * 3, (13,) * 3, (13, 3) * 9, (13,) * 3)
_KERNELS_SB = ((3,) * 3, (13,) * 3, (13, 3, 3) * 9, (13,) * 3)


def GRN(spatial_dims: int, channels: int, eps: float = 1e-6) -> GlobalResponseNorm:  # noqa: N802
    """The channels-first :class:`~densekit.layers.norm.GlobalResponseNorm` (the old name and
    argument order of this module)."""
    return GlobalResponseNorm(channels, eps, spatial_dims=spatial_dims)


class UniRepLKNetBlock(nn.Module):
    """One UniRepLKNet block (see the module docstring).

    Args:
        spatial_dims: 2 or 3.
        dim: Channels.
        kernel_size: Depthwise kernel ``K`` (3, 5, 7, 9, 11, 13, 15 or 17).
        drop_path: Stochastic depth rate.
        layer_scale: Initial value of the per-channel layer scale (``None``: no layer scale).
        ffn_ratio: FFN expansion.
        use_se: Channel squeeze-excitation after the depthwise conv.
        use_grn: GRN inside the FFN.
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, spatial_dims: int, dim: int, kernel_size: int, drop_path: float = 0.0,
                 layer_scale: Optional[float] = 1e-6, ffn_ratio: int = 4, use_se: bool = True,
                 use_grn: bool = True) -> None:
        super().__init__()
        factory = LayerFactory(spatial_dims)
        bn = dict(type='BN')
        if kernel_size >= 7:
            self.dwconv: nn.Module = DilatedReparamBlock(spatial_dims, dim, kernel_size,
                                                         norm_cfg=bn)
        elif kernel_size in (3, 5):
            self.dwconv = factory.conv(dim, dim, kernel_size, padding=kernel_size // 2,
                                       groups=dim, bias=False)
        else:
            raise ValueError(f'kernel_size must be 3, 5 or an odd size >= 7, got {kernel_size!r}')
        self.norm = factory.norm(bn, dim)[1]
        self.se = ChannelSE(spatial_dims, dim, reduction=4) if use_se else nn.Identity()
        hidden = dim * ffn_ratio
        self.pwconv1 = factory.conv(dim, hidden, 1)
        self.act = nn.GELU()
        self.grn = (GlobalResponseNorm(hidden, spatial_dims=spatial_dims) if use_grn
                    else nn.Identity())
        self.pwconv2 = ConvNormAct(spatial_dims, hidden, dim, 1, norm_cfg=bn, act_cfg=None)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale))) \
            if layer_scale is not None else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> same shape."""
        y = self.se(self.norm(self.dwconv(x)))
        y = self.pwconv2(self.grn(self.act(self.pwconv1(y))))
        if self.gamma is not None:
            y = y * self.gamma.view((1, -1) + (1,) * (y.dim() - 2))
        return x + self.drop_path(y)

    @torch.no_grad()
    def switch_to_deploy(self) -> UniRepLKNetBlock:
        """Merge the dilated branches, both BNs and the layer scale into the convs (in place)."""
        if isinstance(self.dwconv, DilatedReparamBlock):
            self.dwconv.switch_to_deploy()
        if isinstance(self.norm, nn.modules.batchnorm._BatchNorm):
            if isinstance(self.dwconv, DilatedReparamBlock):
                self.dwconv.lk_reparam = fuse_conv_bn(self.dwconv.lk_reparam, self.norm.eval())
            else:
                self.dwconv = fuse_conv_bn(self.dwconv, self.norm.eval())
            self.norm = nn.Identity()
        self.pwconv2.eval()
        self.pwconv2.fuse()
        if self.gamma is not None and self.pwconv2.norm is None:
            conv = self.pwconv2.conv
            conv.weight.mul_(self.gamma.view((-1,) + (1,) * (conv.weight.dim() - 1)))
            conv.bias.mul_(self.gamma)
            self.gamma = None
        return self


@MODELS.register_module()
class UniRepLKNet(PyramidBackbone):
    """UniRepLKNet pyramid backbone (levels at strides 4, 8, 16, 32).

    Args:
        arch: ``'atto'``, ``'femto'``, ``'pico'``, ``'nano'``, ``'tiny'``, ``'small'``,
            ``'base'`` or a dict with ``depths``, ``widths`` and ``kernel_sizes`` (one tuple of
            per-block kernels per stage: 3 or 5 = plain depthwise conv, >= 7 =
            :class:`~densekit.blocks.DilatedReparamBlock`).
        in_channels: Input channels.
        out_indices: Returned stages.
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        frozen_stages: Freeze the stem and the first ``frozen_stages`` stages.
        norm_eval: Keep BatchNorms in eval mode while training.
        drop_path_rate: Stochastic depth, rising linearly over the blocks.
        layer_scale: Initial layer-scale value (``None`` disables it).
        use_se: Squeeze-excitation in every block.
        use_grn: GRN in every FFN.
        out_norms: A channel LayerNorm on every returned level (as the paper's dense
            prediction models).
        init_cfg: mmengine init config.

    Raises:
        ValueError: an unknown ``arch`` (naming it and the valid ones) or bad arguments.
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    deploy_units = (UniRepLKNetBlock,)  # switch_to_deploy() (PyramidBackbone) merges these
    arch_settings = {
        'atto': dict(depths=[2, 2, 6, 2], widths=[40, 80, 160, 320], kernel_sizes=_KERNELS_AFP),
        'femto': dict(depths=[2, 2, 6, 2], widths=[48, 96, 192, 384], kernel_sizes=_KERNELS_AFP),
        'pico': dict(depths=[2, 2, 6, 2], widths=[64, 128, 256, 512], kernel_sizes=_KERNELS_AFP),
        'nano': dict(depths=[2, 2, 8, 2], widths=[80, 160, 320, 640], kernel_sizes=_KERNELS_N),
        'tiny': dict(depths=[3, 3, 18, 3], widths=[80, 160, 320, 640], kernel_sizes=_KERNELS_T),
        'small': dict(depths=[3, 3, 27, 3], widths=[96, 192, 384, 768],
                      kernel_sizes=_KERNELS_SB),
        'base': dict(depths=[3, 3, 27, 3], widths=[128, 256, 512, 1024],
                     kernel_sizes=_KERNELS_SB),
    }
    arch_defaults: Dict[str, Any] = {'kernel_sizes': None}
    stem_stride = 4

    def __init__(self, arch: Union[str, dict] = 'atto', *, in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3), spatial_dims: int = 2,
                 frozen_stages: int = -1, norm_eval: bool = False, drop_path_rate: float = 0.0,
                 layer_scale: Optional[float] = 1e-6, use_se: bool = True, use_grn: bool = True,
                 out_norms: bool = True, init_cfg: Any = None) -> None:
        super().__init__(arch, in_channels=in_channels, out_indices=out_indices,
                         spatial_dims=spatial_dims, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, init_cfg=init_cfg)
        kernels = self.arch['kernel_sizes']
        if kernels is None or len(kernels) != self.num_stages or any(
                len(k) != d for k, d in zip(kernels, self.depths)):
            raise ValueError(f'arch kernel_sizes={kernels!r} must give one kernel per block of '
                             f'every stage (depths {self.depths})')
        self.kernel_sizes = [tuple(k) for k in kernels]
        sd, widths, f = self.spatial_dims, self.widths, self.factory
        self.stem = nn.Sequential(
            f.conv(in_channels, widths[0] // 2, 3, stride=2, padding=1),
            ChannelLayerNorm(widths[0] // 2), nn.GELU(),
            f.conv(widths[0] // 2, widths[0], 3, stride=2, padding=1),
            ChannelLayerNorm(widths[0]))
        rates = self.drop_path_rates(drop_path_rate)
        stages: List[nn.Module] = []
        for i, (depth, width) in enumerate(zip(self.depths, widths)):
            parts: Dict[str, nn.Module] = OrderedDict()
            if i > 0:
                parts['downsample'] = nn.Sequential(
                    f.conv(widths[i - 1], width, 3, stride=2, padding=1),
                    ChannelLayerNorm(width))
            parts['blocks'] = nn.Sequential(*[
                UniRepLKNetBlock(sd, width, self.kernel_sizes[i][j], drop_path=rates[i][j],
                                 layer_scale=layer_scale, use_se=use_se, use_grn=use_grn)
                for j in range(depth)])
            stages.append(nn.Sequential(parts))
        self.stages = nn.ModuleList(stages)
        if out_norms:
            self.add_out_norms(ChannelLayerNorm)
        self.freeze_stages()


