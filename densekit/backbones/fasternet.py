"""FasterNet (Chen et al., "Run, Don't Walk: Chasing Higher FLOPS for Faster Neural Networks"),
for images (2D) and volumes (3D).

Each block is a partial convolution (:class:`~densekit.blocks.pconv.PConv`: a 3x3 conv on a
quarter of the channels) followed by a pointwise MLP (1x1 conv to 2C, BatchNorm, activation,
1x1 conv back to C) and a residual connection with stochastic depth. A k4 s4 conv + BN embeds
the input; k2 s2 conv + BN layers double the width between stages; a BatchNorm normalises each
returned level (the official detection backbone does the same).

Sizes (``arch``) follow the official configs: ``t0``/``t1`` use GELU, the larger ones ReLU;
widths double per stage from the embedding width. The official configs set no layer scale
(``layer_scale_init_value = 0``) for every size; the argument is exposed for experiments.

In eval mode without autograd, the MLP's BatchNorm is folded into its first conv
(:class:`~densekit.layers.ConvNormAct`) and the PConv runs in place on the block input, which
is restored bit-exactly afterwards, so only a quarter of the channels is ever copied.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Union

import torch
from mmcv.cnn.bricks.drop import DropPath
from torch import Tensor, nn

from densekit.accel import use
from densekit.backbones.base import ArchSpec, PyramidBackbone
from densekit.blocks.pconv import PConv
from densekit.layers import ConvNormAct, LayerFactory
from densekit.registry import MODELS

__all__ = ['FasterNet', 'FasterNetBlock']


def _widths(embed: int) -> List[int]:
    return [embed * 2 ** i for i in range(4)]


class FasterNetBlock(nn.Module):
    """PConv, then 1x1 conv (C -> rC) + BN + act, 1x1 conv (rC -> C), layer scale, drop path,
    residual.

    Args:
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        channels: Channels C (kept).
        n_div: PConv convolves ``C // n_div`` channels.
        mlp_ratio: Hidden width of the MLP as a multiple of C (2 in FasterNet).
        act_cfg: Activation of the MLP (``'GELU'`` or ``'ReLU'`` in FasterNet).
        drop_path: Stochastic-depth probability.
        layer_scale_init_value: Initial per-channel residual scale; 0 = none.

    Example:
        >>> FasterNetBlock(3, 16)(torch.randn(2, 16, 4, 5, 6)).shape
        torch.Size([2, 16, 4, 5, 6])
    """

    def __init__(self, spatial_dims: int, channels: int, *, n_div: int = 4,
                 mlp_ratio: float = 2.0, act_cfg: Any = 'ReLU', drop_path: float = 0.0,
                 layer_scale_init_value: float = 0.0) -> None:
        super().__init__()
        factory = LayerFactory(spatial_dims)
        hidden = int(round(mlp_ratio * channels))
        if hidden < 1:
            raise ValueError(f'mlp_ratio={mlp_ratio!r} gives no hidden channels for '
                             f'{channels} channels')
        self.spatial_mixing = PConv(factory.spatial_dims, channels, n_div=n_div)
        self.mlp_in = ConvNormAct(factory.spatial_dims, channels, hidden, 1, bias=False,
                                  norm_cfg=dict(type='BN'), act_cfg=act_cfg)
        self.mlp_out = factory.conv(hidden, channels, 1, bias=False)
        self.layer_scale = (nn.Parameter(torch.full((channels,), float(layer_scale_init_value)))
                            if layer_scale_init_value > 0 else None)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.fast_eval = True  # set_fast_eval(model, False) forbids the in-place inference

    def _branch_tail(self, y: Tensor) -> Tensor:
        y = self.mlp_out(self.mlp_in(y))
        if self.layer_scale is not None:
            y = y * self.layer_scale.reshape((-1,) + (1,) * (y.dim() - 2))
        return self.drop_path(y)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> same shape."""
        if torch.is_grad_enabled() or not (self.fast_eval and use('inplace', x)):
            return x + self._branch_tail(self.spatial_mixing(x))
        # inference: mix the first channels in place, run the MLP, then restore the input
        head = self.spatial_mixing.mix_(x)
        try:
            y = self._branch_tail(x)
        finally:
            self.spatial_mixing.restore_(x, head)
        return y.add_(x)


@MODELS.register_module()
class FasterNet(PyramidBackbone):
    """FasterNet backbone returning up to four levels at strides 4, 8, 16, 32.

    Args:
        arch: ``'t0'``, ``'t1'``, ``'t2'``, ``'s'``, ``'m'``, ``'l'``, or a dict with
            ``depths``, ``widths`` and optionally ``mlp_ratio``, ``n_div``, ``act``,
            ``drop_path_rate``, ``layer_scale_init_value``.
        in_channels: Input channels.
        out_indices: Stages to return.
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        drop_path_rate: Largest stochastic-depth rate; ``None`` takes the arch's (the official
            ImageNet value).
        layer_scale_init_value: ``None`` takes the arch's (0 = none, as every official config).
        out_norm: A BatchNorm on each returned level.
        frozen_stages: See :class:`PyramidBackbone`.
        norm_eval: Keep BatchNorms in eval mode while training.
        init_cfg: mmengine initialisation config; by default conv weights are truncated-normal
            (std 0.02), as in the official code.

    Example:
        >>> net = FasterNet('t0')
        >>> net.out_channels, net.strides
        ([40, 80, 160, 320], [4, 8, 16, 32])
    """

    arch_settings = {
        't0': dict(depths=[1, 2, 8, 2], widths=_widths(40), act='GELU', drop_path_rate=0.0),
        't1': dict(depths=[1, 2, 8, 2], widths=_widths(64), act='GELU', drop_path_rate=0.02),
        't2': dict(depths=[1, 2, 8, 2], widths=_widths(96), act='ReLU', drop_path_rate=0.05),
        's': dict(depths=[1, 2, 13, 2], widths=_widths(128), act='ReLU', drop_path_rate=0.1),
        'm': dict(depths=[3, 4, 18, 3], widths=_widths(144), act='ReLU', drop_path_rate=0.2),
        'l': dict(depths=[3, 4, 18, 3], widths=_widths(192), act='ReLU', drop_path_rate=0.3),
    }
    arch_defaults = dict(mlp_ratio=2.0, n_div=4, act='ReLU', drop_path_rate=0.0,
                         layer_scale_init_value=0.0)

    def __init__(self, arch: ArchSpec = 't0', *, in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3), spatial_dims: int = 2,
                 drop_path_rate: Optional[float] = None,
                 layer_scale_init_value: Optional[float] = None, out_norm: bool = True,
                 frozen_stages: int = -1, norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(arch, in_channels=in_channels, out_indices=out_indices,
                         spatial_dims=spatial_dims, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, init_cfg=init_cfg)
        cfg = self.arch
        if drop_path_rate is None:
            drop_path_rate = cfg['drop_path_rate']
        if layer_scale_init_value is None:
            layer_scale_init_value = cfg['layer_scale_init_value']
        if not isinstance(layer_scale_init_value, (int, float)) or layer_scale_init_value < 0:
            raise ValueError(f'layer_scale_init_value must be a number >= 0, got '
                             f'{layer_scale_init_value!r}')
        rates = self.drop_path_rates(drop_path_rate)
        dims, widths = self.spatial_dims, self.widths
        bn = dict(type='BN')
        self.stem = ConvNormAct(dims, in_channels, widths[0], 4, stride=4, bias=False,
                                norm_cfg=bn, act_cfg=None)
        stages = []
        for i, (depth, width) in enumerate(zip(self.depths, widths)):
            downsample = None if i == 0 else ConvNormAct(
                dims, widths[i - 1], width, 2, stride=2, bias=False, norm_cfg=bn, act_cfg=None)
            blocks = [FasterNetBlock(dims, width, n_div=cfg['n_div'], mlp_ratio=cfg['mlp_ratio'],
                                     act_cfg=cfg['act'], drop_path=rates[i][j],
                                     layer_scale_init_value=layer_scale_init_value)
                      for j in range(depth)]
            stages.append(self.build_stage(downsample, blocks))
        self.stages = nn.ModuleList(stages)
        if out_norm:
            self.add_out_norms(lambda c: self.factory.norm(bn, c)[1])
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        self.freeze_stages()
