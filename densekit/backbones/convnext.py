"""ConvNeXt (Liu et al., "A ConvNet for the 2020s"), for images (2D) and volumes (3D).

The reference "modernised" ConvNet: a patchify stem (k4 s4 conv + LayerNorm), downsampling
layers (LayerNorm + k2 s2 conv) between stages, and blocks made of a large depthwise conv, a
channels-last LayerNorm, an inverted MLP (4x, GELU) applied as Linear layers on the channels,
a per-channel layer scale (initialised to 1e-6) and stochastic depth. The small archs
(atto ... nano) come from ConvNeXt V2; ``use_grn=True`` adds V2's global response
normalisation inside the MLP (V2 then drops the layer scale: pass
``layer_scale_init_value=0``).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch
from mmcv.cnn.bricks.drop import DropPath
from torch import Tensor, nn

from densekit.backbones.base import ArchSpec, PyramidBackbone
from densekit.layers import ChannelLayerNorm, LayerFactory, as_tuple, check_spatial_dims
from densekit.layers.norm import GlobalResponseNorm
from densekit.registry import MODELS

__all__ = ['ConvNeXt', 'ConvNeXtBlock', 'GlobalResponseNorm']


class ConvNeXtBlock(nn.Module):
    """One ConvNeXt block: depthwise conv, LayerNorm, Linear (C -> rC), GELU, Linear (rC -> C),
    layer scale, stochastic depth, residual.

    Args:
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        channels: Channels C (kept).
        kernel_size: Depthwise kernel (7 in the paper), int or per-axis tuple of odd sizes.
        mlp_ratio: Hidden width of the MLP, as a multiple of C.
        layer_scale_init_value: Initial per-channel scale of the residual branch; 0 disables it.
        drop_path: Stochastic-depth probability of the residual branch.
        use_grn: Add ConvNeXt V2's global response normalisation after the GELU.

    Example:
        >>> ConvNeXtBlock(3, 16)(torch.randn(1, 16, 5, 6, 7)).shape
        torch.Size([1, 16, 5, 6, 7])
    """

    def __init__(self, spatial_dims: int, channels: int, *, kernel_size: Union[int, Sequence[int]]
                 = 7, mlp_ratio: float = 4.0, layer_scale_init_value: float = 1e-6,
                 drop_path: float = 0.0, use_grn: bool = False) -> None:
        super().__init__()
        factory = LayerFactory(spatial_dims)
        kernel = _odd_kernel(kernel_size, factory.spatial_dims)
        hidden = int(round(mlp_ratio * channels))
        if hidden < 1:
            raise ValueError(f'mlp_ratio={mlp_ratio!r} gives no hidden channels for '
                             f'{channels} channels')
        self.depthwise_conv = factory.conv(channels, channels, kernel,
                                           padding=tuple(k // 2 for k in kernel),
                                           groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.pointwise_conv1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.grn = GlobalResponseNorm(hidden) if use_grn else None
        self.pointwise_conv2 = nn.Linear(hidden, channels)
        self.gamma = (nn.Parameter(torch.full((channels,), float(layer_scale_init_value)))
                      if layer_scale_init_value > 0 else None)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> same shape."""
        y = self.depthwise_conv(x).movedim(1, -1)
        y = self.act(self.pointwise_conv1(self.norm(y)))
        if self.grn is not None:
            y = self.grn(y)
        y = self.pointwise_conv2(y)
        if self.gamma is not None:
            y = y * self.gamma
        return x + self.drop_path(y.movedim(-1, 1))


def _odd_kernel(kernel_size: Union[int, Sequence[int]], spatial_dims: int) -> tuple:
    kernel = as_tuple(kernel_size, spatial_dims, 'kernel_size', minimum=1)
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f'kernel_size={kernel_size!r} must be odd on every axis (same-size '
                         f'padding)')
    return kernel


def trunc_normal_init(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) conv / Linear weights and zero biases, as ConvNeXt does."""
    if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


@MODELS.register_module()
class ConvNeXt(PyramidBackbone):
    """ConvNeXt backbone returning up to four levels at strides 4, 8, 16, 32.

    Args:
        arch: ``'atto'``, ``'femto'``, ``'pico'``, ``'nano'`` (ConvNeXt V2 sizes),
            ``'tiny'``, ``'small'``, ``'base'``, or a dict with ``depths`` and ``widths``.
        in_channels: Input channels.
        out_indices: Stages to return.
        spatial_dims: 2 (NCHW) or 3 (NCDHW; 7x7x7 depthwise kernels by default).
        kernel_size: Depthwise kernel of the blocks.
        drop_path_rate: Largest stochastic-depth rate (rising linearly over the blocks).
        layer_scale_init_value: Initial layer scale (0 = none).
        use_grn: ConvNeXt V2 global response normalisation in every block.
        out_norm: A LayerNorm on each returned level (as mmpretrain's ConvNeXt backbone).
        frozen_stages: See :class:`PyramidBackbone`.
        norm_eval: See :class:`PyramidBackbone` (ConvNeXt has no BatchNorm by default).
        init_cfg: mmengine initialisation config; by default weights are truncated-normal.

    Example:
        >>> net = ConvNeXt('atto')
        >>> [tuple(o.shape) for o in net(torch.rand(1, 3, 64, 64))]
        [(1, 40, 16, 16), (1, 80, 8, 8), (1, 160, 4, 4), (1, 320, 2, 2)]
    """

    arch_settings = {
        'atto': dict(depths=[2, 2, 6, 2], widths=[40, 80, 160, 320]),
        'femto': dict(depths=[2, 2, 6, 2], widths=[48, 96, 192, 384]),
        'pico': dict(depths=[2, 2, 6, 2], widths=[64, 128, 256, 512]),
        'nano': dict(depths=[2, 2, 8, 2], widths=[80, 160, 320, 640]),
        'tiny': dict(depths=[3, 3, 9, 3], widths=[96, 192, 384, 768]),
        'small': dict(depths=[3, 3, 27, 3], widths=[96, 192, 384, 768]),
        'base': dict(depths=[3, 3, 27, 3], widths=[128, 256, 512, 1024]),
    }

    def __init__(self, arch: ArchSpec = 'tiny', *, in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3), spatial_dims: int = 2,
                 kernel_size: Union[int, Sequence[int]] = 7, drop_path_rate: float = 0.0,
                 layer_scale_init_value: float = 1e-6, use_grn: bool = False,
                 out_norm: bool = True, frozen_stages: int = -1, norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(arch, in_channels=in_channels, out_indices=out_indices,
                         spatial_dims=check_spatial_dims(spatial_dims),
                         frozen_stages=frozen_stages, norm_eval=norm_eval, init_cfg=init_cfg)
        _odd_kernel(kernel_size, self.spatial_dims)
        if not isinstance(layer_scale_init_value, (int, float)) or layer_scale_init_value < 0:
            raise ValueError(f'layer_scale_init_value must be a number >= 0, got '
                             f'{layer_scale_init_value!r}')
        rates = self.drop_path_rates(drop_path_rate)
        f, widths = self.factory, self.widths
        self.stem = nn.Sequential(f.conv(in_channels, widths[0], 4, stride=4),
                                  ChannelLayerNorm(widths[0]))
        stages = []
        for i, (depth, width) in enumerate(zip(self.depths, widths)):
            downsample = None if i == 0 else nn.Sequential(
                ChannelLayerNorm(widths[i - 1]), f.conv(widths[i - 1], width, 2, stride=2))
            blocks = [ConvNeXtBlock(self.spatial_dims, width, kernel_size=kernel_size,
                                    layer_scale_init_value=layer_scale_init_value,
                                    drop_path=rates[i][j], use_grn=use_grn)
                      for j in range(depth)]
            stages.append(self.build_stage(downsample, blocks))
        self.stages = nn.ModuleList(stages)
        if out_norm:
            self.add_out_norms(ChannelLayerNorm)
        self.apply(trunc_normal_init)
        self.freeze_stages()
