"""Atrous Spatial Pyramid Pooling (DeepLabv3 / v3+) as a neck, for 2D (NCHW) and 3D (NCDHW).

Branches: a 1x1 conv (rate 1), dilated 3x3 convs (plain or depthwise-separable as in
DeepLabv3+), and an image-pooling branch; their concatenation is projected by a bottleneck conv.
Layout and key names follow the ASPP part of mmseg's ``ASPPHead`` (``image_pool``,
``aspp_modules``, ``bottleneck``), whose checkpoints load directly.

Work saved against a literal implementation (results equal up to float rounding), each an
exact fast path that :mod:`densekit.accel` allows per call (CPU float32, no autocast, no
tracing / export / compile, switch on; otherwise the literal computation runs, as mmseg's):

* ``channels_last``: inference runs channels-last, where oneDNN's forward kernels skip the
  taps of dilated convs that fall entirely in the zero padding - most of the work of rate
  24/36 branches on 64x64 maps; training stays NCHW, and only the branches with at most 40 % of
  their taps in bounds run on a channels-last copy (``tap_skip``, :mod:`densekit.accel.taps`),
  where the same kernels skip them in the backward too;
* ``aspp_pool_bias``: the image-pooling branch is constant over space, so its share of the
  bottleneck conv is a per-sample bias (exact at the borders) instead of ``channels`` more
  input channels;
* ``fold_bn`` / ``inplace``: BatchNorm is folded into the convs in eval mode, and without
  autograd the branches write straight into the concatenation buffer with in-place
  activations.
"""
from __future__ import annotations

import functools
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from densekit.accel import use
from densekit.accel.conv import is_plain_conv
from densekit.accel.taps import axis_segments
from densekit.errors import positive_int
from densekit.layers import (
    ConvNormAct,
    LayerFactory,
    SeparableConvNormAct,
    as_tuple,
    channels_last,
    conv_forward,
    empty_channels_last,
    fold_conv_bn,
    is_channels_last,
    resize,
)
from densekit.necks.convert import PeerCheckpointMixin
from densekit.registry import MODELS

__all__ = ['ASPP', 'check_rates']


def check_rates(dilations: Any, spatial_dims: int,
                argname: str = 'dilations') -> Tuple[Tuple[int, ...], ...]:
    """Validate ASPP rates: a non-empty sequence of ints or per-axis tuples of ``spatial_dims``.

    Returns:
        One per-axis tuple per branch, e.g. ``(1, 6)`` -> ``((1, 1), (6, 6))`` in 2D.
    """
    if not isinstance(dilations, (list, tuple)) or not dilations:
        raise ValueError(f'{argname} must be a non-empty list/tuple of rates, got {dilations!r}')
    return tuple(as_tuple(rate, spatial_dims, f'{argname} item', minimum=1)
                 for rate in dilations)


@functools.lru_cache(maxsize=256)
def _tap_masks(size: int, kernel: int, dilation: int, padding: int) -> Tensor:
    """``(out_size, kernel)`` 0/1 matrix: which taps of a padded conv are in bounds per output."""
    rows = []
    for start, stop, first, last, _, _ in axis_segments(size, kernel, dilation, padding):
        row = [1.0 if first <= t <= last else 0.0 for t in range(kernel)]
        rows += [row] * (stop - start)
    with torch.inference_mode(False):  # cached: must stay usable with autograd later
        return torch.tensor(rows)


def constant_map_conv(value: Tensor, weight: Tensor, spatial: Sequence[int],
                      padding: Sequence[int], dilation: Sequence[int]) -> Tensor:
    """Zero-padded stride-1 conv of a map that is constant over space, without building it.

    Args:
        value: ``(N, C_in)``, the map's value at every position.
        weight: ``(C_out, C_in, *kernel)``.
        spatial: Spatial size of the (virtual) input map.
        padding, dilation: Per-axis conv padding and dilation.

    Returns:
        ``(N, C_out, *out_spatial)``, equal to ``conv(value broadcast to spatial, weight)``; in the
        interior it is ``weight.sum(taps) @ value``, at the borders only in-bounds taps count.
    """
    dims = len(spatial)
    taps = 'abc'[:dims]
    axes = 'zyx'[-dims:]
    per_tap = torch.einsum(f'ni,oi{taps}->no{taps}', value, weight)
    masks = [_tap_masks(int(s), int(k), int(d), int(p)).to(weight.device, weight.dtype)
             for s, k, d, p in zip(spatial, weight.shape[2:], dilation, padding)]
    spec = f'no{taps},' + ','.join(f'{a}{t}' for a, t in zip(axes, taps)) + f'->no{axes}'
    return torch.einsum(spec, per_tap, *masks)


@MODELS.register_module()
class ASPP(PeerCheckpointMixin, BaseModule):
    """ASPP neck: features in, the same features out with one level replaced by its ASPP.

    Args:
        in_channels: Channels of the level ASPP runs on (int), or of every input level (list).
        channels: Channels of every branch and of the output.
        dilations: One rate per branch; rate 1 (all axes) gives a 1x1 branch, others a 3x3
            conv with that dilation and padding. Per-axis tuples are allowed (e.g. anisotropic
            3D rates ``(1, 6, 6)``).
        in_index: Index of the input level to process.
        separable: Depthwise-separable dilated branches (DeepLabv3+).
        image_pool: Add the global-average-pooling branch.
        bottleneck_kernel_size: Kernel of the projection (3 as mmseg, 1 as the DeepLabv3 paper).
        align_corners: Only matters if the pooled branch must be resized explicitly.
        conv_cfg, norm_cfg, act_cfg: Layer specs of every ConvNormAct.
        init_cfg: mmengine init config.
        spatial_dims: 2 for NCHW, 3 for NCDHW.
        channels_last: Run inference in channels-last memory order (the output is then
            channels-last): oneDNN's channels-last forward kernels skip the taps of large-rate
            branches that fall in the zero padding. Training stays NCHW, where oneDNN's
            backward kernels are faster.

    Raises:
        ValueError: bad channels, rates, in_index or layer specs.

    Example:
        >>> aspp = ASPP(16, 8, dilations=(1, 2, 4))
        >>> outs = aspp([torch.rand(2, 4, 32, 32), torch.rand(2, 16, 16, 16)])
        >>> [tuple(o.shape) for o in outs]
        [(2, 4, 32, 32), (2, 8, 16, 16)]
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    peer_rules = 'mmseg.ASPPHead->ASPP'

    def __init__(self, in_channels: Union[int, Sequence[int]], channels: int,
                 dilations: Sequence[Any] = (1, 6, 12, 18), in_index: int = -1,
                 separable: bool = False, image_pool: bool = True,
                 bottleneck_kernel_size: int = 3, align_corners: bool = False,
                 conv_cfg: Any = None, norm_cfg: Any = dict(type='BN'),  # noqa: B006
                 act_cfg: Any = dict(type='ReLU'), init_cfg: Any = None,  # noqa: B006
                 spatial_dims: int = 2, channels_last: bool = True) -> None:
        super().__init__(init_cfg=init_cfg)
        layers = LayerFactory(spatial_dims)
        self.spatial_dims = layers.spatial_dims
        self.channels_last = channels_last
        if not isinstance(in_index, int) or isinstance(in_index, bool):
            raise ValueError(f'in_index must be an int, got {in_index!r}')
        self.in_index = in_index
        if isinstance(in_channels, (list, tuple)):
            if not -len(in_channels) <= in_index < len(in_channels):
                raise ValueError(f'in_index={in_index} is out of range for in_channels='
                                 f'{tuple(in_channels)}')
            self.num_ins: Optional[int] = len(in_channels)
            self.in_channels: Any = tuple(in_channels)
            branch_in = in_channels[in_index]
        else:
            self.num_ins, self.in_channels, branch_in = None, in_channels, in_channels
        for name, value in (('in_channels', branch_in), ('channels', channels)):
            positive_int(value, name)
        if bottleneck_kernel_size not in (1, 3):
            raise ValueError(f'bottleneck_kernel_size must be 1 or 3, got '
                             f'{bottleneck_kernel_size!r}')
        self.channels = channels
        self.dilations = check_rates(dilations, self.spatial_dims)
        self.separable = separable
        self.align_corners = align_corners
        self.mode = layers.interp_mode('linear')

        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        if image_pool:
            self.pool = layers.pool('adaptive_avg', 1)
            self.image_pool = ConvNormAct(self.spatial_dims, branch_in, channels, 1, **common)
        else:
            self.pool = self.image_pool = None
        self.aspp_modules = nn.ModuleList()
        # each branch gets the rate as written (an int stays an int, as mmcv's ConvModule
        # reports ``padding``); check_rates has validated it
        for rate, given in zip(self.dilations, dilations):
            if all(r == 1 for r in rate):
                branch = ConvNormAct(self.spatial_dims, branch_in, channels, 1, **common)
            elif separable:
                branch = SeparableConvNormAct(self.spatial_dims, branch_in, channels, 3,
                                              padding=given, dilation=given, **common)
            else:
                branch = ConvNormAct(self.spatial_dims, branch_in, channels, 3, padding=given,
                                     dilation=given, **common)
            self.aspp_modules.append(branch)
        n_cat = len(self.dilations) + int(image_pool)
        self.bottleneck = ConvNormAct(self.spatial_dims, n_cat * channels, channels,
                                      bottleneck_kernel_size,
                                      padding=bottleneck_kernel_size // 2, **common)
        self.fast_eval = True  # set_fast_eval(model, False) forbids the fast paths

    # -- forward -----------------------------------------------------------------------------
    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Replace ``inputs[in_index]`` by its ASPP output.

        Args:
            inputs: Feature maps, NCHW or NCDHW (one per ``in_channels`` entry if it is a list).

        Returns:
            The same maps, the ``in_index`` one now ``(N, channels, *spatial)``; e.g. a
            ``(2, 2048, 64, 64)`` level becomes ``(2, 512, 64, 64)``.
        """
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(f'ASPP.forward expects a list or tuple of feature maps, got '
                            f'{type(inputs).__name__}')
        if self.num_ins is not None and len(inputs) != self.num_ins:
            raise ValueError(f'ASPP.forward got {len(inputs)} feature maps but in_channels '
                             f'lists {self.num_ins}')
        if not -len(inputs) <= self.in_index < len(inputs):
            raise ValueError(f'in_index={self.in_index} is out of range for {len(inputs)} '
                             f'feature maps')
        outs: List[Tensor] = list(inputs)
        outs[self.in_index] = self.forward_single(inputs[self.in_index])
        return tuple(outs)

    def forward_single(self, x: Tensor) -> Tensor:
        """ASPP of one map: ``(N, C_in, *spatial)`` -> ``(N, channels, *spatial)``."""
        if x.dim() != self.spatial_dims + 2:
            layout = 'NCHW' if self.spatial_dims == 2 else 'NCDHW'
            raise ValueError(f'ASPP (spatial_dims={self.spatial_dims}) expects {layout} input, '
                             f'got shape {tuple(x.shape)}')
        inference, fast = not torch.is_grad_enabled(), self.fast_eval
        if fast and inference and self.channels_last and use('channels_last', x):
            x = channels_last(x)
        pooled = self.image_pool(self.pool(x)) if self.image_pool is not None else None
        if fast and inference and use('inplace', x):
            c = self.channels
            shape = (x.shape[0], len(self.aspp_modules) * c, *x.shape[2:])
            branches = empty_channels_last(shape, x) if is_channels_last(x) else x.new_empty(shape)
            for k, branch in enumerate(self.aspp_modules):
                branch(x, out=branches[:, k * c:(k + 1) * c])
        else:
            branches = torch.cat([branch(x) for branch in self.aspp_modules], dim=1)
        del x  # a channels-last copy is not needed by the projection
        return self._project(branches, pooled)

    def _project(self, branches: Tensor, pooled: Optional[Tensor]) -> Tensor:
        bottleneck = self.bottleneck
        if pooled is None:
            return bottleneck(branches)
        if not (self.fast_eval and bottleneck.fast_eval and is_plain_conv(bottleneck.conv)
                and use('aspp_pool_bias', branches, pooled)):
            pooled_map = resize(pooled, branches.shape[2:], mode=self.mode,
                                align_corners=self.align_corners)
            return bottleneck(torch.cat([pooled_map, branches], dim=1))
        c = self.channels
        if torch.is_grad_enabled():
            weight, bias, folded = bottleneck.conv_params()
            w_pool, w_rest = weight[:, :c], weight[:, c:]
        else:  # fold straight into the two parts (one pass, no full-size temporary)
            conv, fmt = bottleneck.conv, _layout_of(branches)
            folded = bottleneck.folds_norm(branches)
            with torch.no_grad():
                if folded:
                    w_rest, bias = fold_conv_bn(conv.weight[:, c:], conv.bias, bottleneck.norm,
                                                memory_format=fmt)
                    w_pool = fold_conv_bn(conv.weight[:, :c], conv.bias, bottleneck.norm)[0]
                else:
                    w_rest, bias = conv.weight[:, c:].contiguous(memory_format=fmt), conv.bias
                    w_pool = conv.weight[:, :c]
        y = conv_forward(bottleneck.conv, branches, w_rest, bias)
        term = constant_map_conv(pooled.flatten(1), w_pool, branches.shape[2:],
                                 bottleneck.conv.padding, bottleneck.conv.dilation)
        y = y.add_(term) if not torch.is_grad_enabled() else y + term
        return bottleneck.after_conv(y, folded)


def _layout_of(x: Tensor) -> torch.memory_format:
    """``x``'s memory format if it is channels-last, else the contiguous format."""
    if not is_channels_last(x):
        return torch.contiguous_format
    return torch.channels_last if x.dim() == 4 else torch.channels_last_3d
