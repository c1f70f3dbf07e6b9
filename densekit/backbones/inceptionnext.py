"""InceptionNeXt (Yu et al., "InceptionNeXt: When Inception Meets ConvNeXt"), 2D and 3D.

A MetaNeXt block is token mixer -> BatchNorm -> ConvMLP (1x1 conv, GELU, 1x1 conv) -> layer
scale -> stochastic depth -> residual (in eval without autograd, BatchNorm and layer scale are
folded into the MLP, which runs as Linear layers on a channels-last view). InceptionNeXt's
token mixer replaces ConvNeXt's large depthwise kernel by an Inception-style split of the
channels:

* a small square depthwise conv (3x3) on a ``branch_ratio`` share of the channels,
* one depthwise *band* conv per spatial axis (1 x k and k x 1 in 2D, k = 11) on a
  ``branch_ratio`` share each,
* identity on the remaining channels.

**3D.** A volume has three axes, so the mixer has three bands (1x1xk, 1xkx1, kx1x1) next to the
3x3x3 cube: ``4 * branch_ratio`` of the channels are convolved (the identity share shrinks;
with atto's ratio of 1/4 nothing is left on the identity branch). Channel order is identity,
square, then one band per axis from the last axis to the first, which in 2D is the official
order (identity, 3x3, 1 x k, k x 1).

Sizes follow the official models: atto uses band kernel 9 and branch ratio 1/4, the others
band kernel 11 and ratio 1/8; the MLP ratios are 4, 4, 4, 3 over the stages.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from torch import Tensor, nn

from densekit.accel import use
from densekit.backbones.base import ArchSpec, PyramidBackbone
from densekit.backbones.convnext import trunc_normal_init
from densekit.layers import ConvNormAct, LayerFactory
from densekit.registry import MODELS

__all__ = ['InceptionNeXt', 'InceptionDWConv', 'MetaNeXtBlock']


@MODELS.register_module()
class InceptionDWConv(nn.Module):
    """Inception depthwise conv token mixer (square + one band per axis + identity).

    Args:
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        channels: Channels C (kept).
        square_kernel_size: Odd size of the square (cube) depthwise kernel.
        band_kernel_size: Odd length of the band kernels.
        branch_ratio: Share of the channels given to each conv branch; the
            ``spatial_dims + 1`` conv branches must leave ``>= 0`` identity channels.

    Raises:
        ValueError: even kernel sizes, a ratio giving zero channels per branch, or more
            convolved channels than C.

    Example:
        >>> mixer = InceptionDWConv(2, 64)
        >>> mixer.split_sizes
        (40, 8, 8, 8)
    """

    def __init__(self, spatial_dims: int, channels: int, *, square_kernel_size: int = 3,
                 band_kernel_size: int = 11, branch_ratio: float = 0.125) -> None:
        super().__init__()
        factory = LayerFactory(spatial_dims)
        dims = factory.spatial_dims
        for name, k in (('square_kernel_size', square_kernel_size),
                        ('band_kernel_size', band_kernel_size)):
            if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k % 2 == 0:
                raise ValueError(f'{name} must be a positive odd int, got {k!r}')
        branch = int(channels * branch_ratio)
        identity = channels - (dims + 1) * branch
        if branch < 1 or identity < 0:
            raise ValueError(f'branch_ratio={branch_ratio!r} with channels={channels} gives '
                             f'{branch} channels per conv branch and {identity} identity '
                             f'channels for spatial_dims={dims}; expected >= 1 and >= 0')
        self.spatial_dims = dims
        self.split_sizes = (identity,) + (branch,) * (dims + 1)
        self.dwconv_square = factory.conv(branch, branch, square_kernel_size,
                                          padding=square_kernel_size // 2, groups=branch)
        bands = []
        for axis in reversed(range(dims)):
            kernel = [1] * dims
            kernel[axis] = band_kernel_size
            bands.append(factory.conv(branch, branch, tuple(kernel),
                                      padding=tuple(k // 2 for k in kernel), groups=branch))
        self.dwconv_bands = nn.ModuleList(bands)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> same shape."""
        parts = torch.split(x, self.split_sizes, dim=1)
        convs = [self.dwconv_square, *self.dwconv_bands]
        return torch.cat([parts[0]] + [conv(p) for conv, p in zip(convs, parts[1:])], dim=1)


class ConvMlp(nn.Module):
    """Two pointwise convs with GELU between (``fc1``, ``fc2``: 1x1 conv weights, as the
    official model), applied as Linear layers on a channels-last view."""

    def __init__(self, factory: LayerFactory, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = factory.conv(channels, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = factory.conv(hidden, channels, 1)


class MetaNeXtBlock(nn.Module):
    """Token mixer, BatchNorm, ConvMLP (1x1, GELU, 1x1), layer scale, drop path, residual.

    The MLP runs as two Linear layers on a channels-last view (the same maths as 1x1 convs,
    and faster on CPUs). Without autograd and with the BatchNorm in eval mode, the BatchNorm
    is folded into ``fc1`` (an input-side affine map) and the layer scale into ``fc2``; the
    folded weights are cached until a parameter changes.

    Args:
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        channels: Channels C (kept).
        mixer: The token mixer module (channels kept).
        mlp_ratio: Hidden width of the MLP as a multiple of C.
        layer_scale_init_value: Initial per-channel residual scale; 0 = none.
        drop_path: Stochastic-depth probability.
    """

    def __init__(self, spatial_dims: int, channels: int, mixer: nn.Module, *,
                 mlp_ratio: float = 4.0, layer_scale_init_value: float = 1e-6,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        factory = LayerFactory(spatial_dims)
        hidden = int(mlp_ratio * channels)
        if hidden < 1:
            raise ValueError(f'mlp_ratio={mlp_ratio!r} gives no hidden channels for '
                             f'{channels} channels')
        self.token_mixer = mixer
        self.norm = factory.norm(dict(type='BN'), channels)[1]
        self.mlp = ConvMlp(factory, channels, hidden)
        self.gamma = (nn.Parameter(torch.full((channels,), float(layer_scale_init_value)))
                      if layer_scale_init_value > 0 else None)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.fast_eval = True  # set_fast_eval(model, False) forbids the fast path

    def _folded_params(self) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """fc1 with the eval BatchNorm folded in, fc2 with the layer scale folded in."""
        bn, fc1, fc2 = self.norm, self.mlp.fc1, self.mlp.fc2

        with torch.no_grad():  # recomputed per call (one pass over the weights): never stale
            scale = torch.rsqrt(bn.running_var + bn.eps) * bn.weight
            shift = bn.bias - bn.running_mean * scale
            w1 = fc1.weight.flatten(1)
            b1 = fc1.bias + w1 @ shift
            w1 = w1 * scale
            w2, b2 = fc2.weight.flatten(1), fc2.bias
            if self.gamma is not None:
                w2, b2 = w2 * self.gamma[:, None], b2 * self.gamma
            return w1.contiguous(), b1, w2.contiguous(), b2

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> same shape."""
        y = self.token_mixer(x)
        fc1, fc2 = self.mlp.fc1, self.mlp.fc2
        if not torch.is_grad_enabled() and not self.norm.training and self.fast_eval \
                and use('fold_bn', y, fc1.weight):
            w1, b1, w2, b2 = self._folded_params()
            y = F.linear(self.mlp.act(F.linear(y.movedim(1, -1), w1, b1)), w2, b2)
            return self.drop_path(y.movedim(-1, 1)).add_(x)
        y = self.norm(y).movedim(1, -1)
        y = self.mlp.act(F.linear(y, fc1.weight.flatten(1), fc1.bias))
        y = F.linear(y, fc2.weight.flatten(1), fc2.bias)
        if self.gamma is not None:
            y = y * self.gamma
        return x + self.drop_path(y.movedim(-1, 1))


@MODELS.register_module()
class InceptionNeXt(PyramidBackbone):
    """InceptionNeXt backbone returning up to four levels at strides 4, 8, 16, 32.

    Args:
        arch: ``'atto'``, ``'tiny'``, ``'small'``, ``'base'``, or a dict with ``depths``,
            ``widths`` and optionally ``mlp_ratios`` (per stage), ``band_kernel_size``,
            ``branch_ratio``.
        in_channels: Input channels.
        out_indices: Stages to return.
        spatial_dims: 2 (NCHW) or 3 (NCDHW; three band convs per mixer, see module doc).
        drop_path_rate: Largest stochastic-depth rate.
        layer_scale_init_value: Initial layer scale (1e-6 as the paper; 0 = none).
        out_norm: A BatchNorm on each returned level (off by default: the official model has
            none, and the blocks already end in a residual of normalised features).
        frozen_stages: See :class:`PyramidBackbone`.
        norm_eval: Keep BatchNorms in eval mode while training.
        init_cfg: mmengine initialisation config; by default truncated-normal (std 0.02).

    Example:
        >>> net = InceptionNeXt('atto', spatial_dims=3, out_indices=(1, 2))
        >>> net.out_channels, net.strides
        ([80, 160], [8, 16])
    """

    arch_settings = {
        'atto': dict(depths=[2, 2, 6, 2], widths=[40, 80, 160, 320], band_kernel_size=9,
                     branch_ratio=0.25),
        'tiny': dict(depths=[3, 3, 9, 3], widths=[96, 192, 384, 768]),
        'small': dict(depths=[3, 3, 27, 3], widths=[96, 192, 384, 768]),
        'base': dict(depths=[3, 3, 27, 3], widths=[128, 256, 512, 1024]),
    }
    arch_defaults = dict(mlp_ratios=(4, 4, 4, 3), band_kernel_size=11, branch_ratio=0.125,
                         square_kernel_size=3)

    def __init__(self, arch: ArchSpec = 'tiny', *, in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3), spatial_dims: int = 2,
                 drop_path_rate: float = 0.0, layer_scale_init_value: float = 1e-6,
                 out_norm: bool = False, frozen_stages: int = -1, norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(arch, in_channels=in_channels, out_indices=out_indices,
                         spatial_dims=spatial_dims, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, init_cfg=init_cfg)
        cfg = self.arch
        ratios = cfg['mlp_ratios']
        if isinstance(ratios, (int, float)):
            ratios = [ratios] * self.num_stages
        if len(ratios) != self.num_stages:
            raise ValueError(f'arch mlp_ratios={ratios!r} needs one entry per stage '
                             f'({self.num_stages})')
        if not isinstance(layer_scale_init_value, (int, float)) or layer_scale_init_value < 0:
            raise ValueError(f'layer_scale_init_value must be a number >= 0, got '
                             f'{layer_scale_init_value!r}')
        rates = self.drop_path_rates(drop_path_rate)
        dims, widths, f = self.spatial_dims, self.widths, self.factory
        bn = dict(type='BN')
        self.stem = ConvNormAct(dims, in_channels, widths[0], 4, stride=4, bias=True,
                                norm_cfg=bn, act_cfg=None)
        stages = []
        for i, (depth, width) in enumerate(zip(self.depths, widths)):
            downsample = None if i == 0 else nn.Sequential(
                f.norm(bn, widths[i - 1])[1], f.conv(widths[i - 1], width, 2, stride=2))
            blocks = [MetaNeXtBlock(
                dims, width,
                InceptionDWConv(dims, width, square_kernel_size=cfg['square_kernel_size'],
                                band_kernel_size=cfg['band_kernel_size'],
                                branch_ratio=cfg['branch_ratio']),
                mlp_ratio=ratios[i], layer_scale_init_value=layer_scale_init_value,
                drop_path=rates[i][j]) for j in range(depth)]
            stages.append(self.build_stage(downsample, blocks))
        self.stages = nn.ModuleList(stages)
        if out_norm:
            self.add_out_norms(lambda c: f.norm(bn, c)[1])
        self.apply(trunc_normal_init)
        self.freeze_stages()
