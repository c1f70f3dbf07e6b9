"""Feature Pyramid Network for 2D (NCHW) and 3D (NCDHW) feature pyramids.

Accepts mmdet ``FPN``'s arguments and has its state-dict keys (``lateral_convs.{i}.conv.weight``,
``fpn_convs.{i}.conv.weight``, ``*.bn.*`` / ``*.gn.*`` with a norm), so an mmdet FPN checkpoint
loads directly and gives the same outputs.
"""
from __future__ import annotations

from typing import Any, List, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from densekit.accel import use
from densekit.errors import positive_int
from densekit.layers import ConvNormAct, LayerFactory, check_features, resize
from densekit.necks.convert import PeerCheckpointMixin
from densekit.registry import MODELS

__all__ = ['FPN']

_EXTRA_SOURCES = ('on_input', 'on_lateral', 'on_output')



def _power_of_two_ratios(small: Sequence[int], large: Sequence[int]) -> Union[List[int], None]:
    """Per-axis integer ratios ``large / small`` if all are powers of two, else None."""
    ratios = []
    for s, b in zip(small, large):
        if s < 1 or b % s:
            return None
        r = b // s
        if r & (r - 1):
            return None
        ratios.append(r)
    return ratios


class _AddNearestUpsampled(torch.autograd.Function):
    """``lateral + nearest_upsample(top)`` for power-of-two ratios as one broadcast add."""

    @staticmethod
    def forward(ctx: Any, lateral: Tensor, top: Tensor,  # noqa: ANN205
                blocked_shape: List[int], top_shape: List[int]) -> Tensor:
        ctx.top_size = list(top.shape)
        return (lateral.view(blocked_shape) + top.view(top_shape)).view(lateral.shape)

    @staticmethod
    def backward(ctx: Any, grad: Tensor):  # noqa: ANN205
        grad_top = None
        if ctx.needs_input_grad[1]:
            backward = (torch.ops.aten.upsample_nearest2d_backward if grad.dim() == 4
                        else torch.ops.aten.upsample_nearest3d_backward)
            grad_top = backward(grad, list(grad.shape[2:]), ctx.top_size)
        return grad, grad_top, None, None


def add_nearest_upsampled(lateral: Tensor, top: Tensor, mode: str, fast: bool = True) -> Tensor:
    """``lateral + interpolate(top, size=lateral.shape[2:], mode=mode)``.

    For nearest upsampling by power-of-two factors (exact in floating point) the sum is a
    broadcast add on a blocked view of ``lateral``, so the upsampled map is never materialised;
    without autograd it is done in place.

    Args:
        lateral: ``(N, C, *big)``, NCHW or NCDHW; overwritten when autograd is off.
        top: ``(N, C, *small)``.
        mode: Interpolation mode of the FPN's ``upsample_cfg``.
        fast: False forces the plain interpolate + add.

    Returns:
        ``(N, C, *big)``; e.g. ``(2, 256, 128, 128)`` + ``(2, 256, 64, 64)``.
    """
    # densekit.accel says no under a jit trace (FlopAnalyzer, torch.jit.trace, ONNX export),
    # compile, autocast and off CPU: the plain interpolate + add computes the same
    allowed = fast and mode == 'nearest' and use('fpn_add', lateral, top)
    ratios = _power_of_two_ratios(top.shape[2:], lateral.shape[2:]) if allowed else None
    if ratios is None or not lateral.is_contiguous() or not top.is_contiguous():
        up = resize(top, size=lateral.shape[2:], mode=mode)
        if allowed and not torch.is_grad_enabled():
            return lateral.add_(up)
        return lateral + up
    blocked_shape, top_shape = list(lateral.shape[:2]), list(top.shape[:2])
    for size, r in zip(top.shape[2:], ratios):
        blocked_shape += [size, r]
        top_shape += [size, 1]
    if not torch.is_grad_enabled():
        lateral.view(blocked_shape).add_(top.view(top_shape))
        return lateral
    return _AddNearestUpsampled.apply(lateral, top, blocked_shape, top_shape)


@MODELS.register_module()
class FPN(PeerCheckpointMixin, BaseModule):
    """Feature Pyramid Network (Lin et al., 2017), mmdet-compatible, 2D or 3D.

    Args:
        in_channels: Channels of each input level, e.g. ``[256, 512, 1024, 2048]``.
        out_channels: Channels of every output level.
        num_outs: Number of output levels (extra levels come from max-pool or strided convs).
        start_level: First input level used.
        end_level: Last input level used (inclusive); -1 means the last one.
        add_extra_convs: False (max-pool extra levels), True (= ``'on_input'``),
            ``'on_input'``, ``'on_lateral'`` or ``'on_output'`` (source of the first extra conv).
        relu_before_extra_convs: ReLU before every extra conv but the first.
        no_norm_on_lateral: No norm on the lateral 1x1 convs.
        conv_cfg: Conv spec (None = plain conv).
        norm_cfg: Norm spec (e.g. ``dict(type='BN')``), None for no norm.
        act_cfg: Activation spec, None for no activation.
        upsample_cfg: ``F.interpolate`` arguments for the top-down path, default nearest;
            ``'bilinear'`` / ``'trilinear'`` follow ``spatial_dims``.
        init_cfg: mmengine init config.
        spatial_dims: 2 for NCHW inputs, 3 for NCDHW inputs.

    Raises:
        ValueError: inconsistent levels / num_outs, unknown ``add_extra_convs``, bad specs.

    Example (2D, a ResNet pyramid of a 64x64 image):
        >>> fpn = FPN([8, 16, 32], 4, num_outs=4)
        >>> outs = fpn([torch.rand(1, c, 16 // 2**i, 16 // 2**i) for i, c in
        ...             enumerate([8, 16, 32])])
        >>> [tuple(o.shape) for o in outs]
        [(1, 4, 16, 16), (1, 4, 8, 8), (1, 4, 4, 4), (1, 4, 2, 2)]
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    peer_rules = 'mmdet.FPN'

    def __init__(self, in_channels: Sequence[int], out_channels: int, num_outs: int,
                 start_level: int = 0, end_level: int = -1,
                 add_extra_convs: Union[bool, str] = False, relu_before_extra_convs: bool = False,
                 no_norm_on_lateral: bool = False, conv_cfg: Any = None, norm_cfg: Any = None,
                 act_cfg: Any = None, upsample_cfg: Any = dict(mode='nearest'),  # noqa: B006
                 init_cfg: Any = dict(type='Xavier', layer=['Conv2d', 'Conv3d'],  # noqa: B006
                                      distribution='uniform'),
                 spatial_dims: int = 2) -> None:
        super().__init__(init_cfg=init_cfg)
        layers = LayerFactory(spatial_dims)
        self.spatial_dims = layers.spatial_dims
        if not isinstance(in_channels, (list, tuple)) or not in_channels:
            raise ValueError(f'in_channels must be a non-empty list of ints, got {in_channels!r}')
        self.in_channels = [positive_int(c, 'in_channels item') for c in in_channels]
        self.out_channels = positive_int(out_channels, 'out_channels')
        self.num_ins = len(self.in_channels)
        self.num_outs = positive_int(num_outs, 'num_outs')
        if not isinstance(start_level, int) or not 0 <= start_level < self.num_ins:
            raise ValueError(f'start_level={start_level!r} must index one of the {self.num_ins} '
                             f'input levels (in_channels={self.in_channels})')
        if end_level in (-1, self.num_ins - 1):
            self.backbone_end_level = self.num_ins
            if num_outs < self.num_ins - start_level:
                raise ValueError(f'num_outs={num_outs} is smaller than the '
                                 f'{self.num_ins - start_level} input levels used (start_level='
                                 f'{start_level}, in_channels={self.in_channels})')
        else:
            if not isinstance(end_level, int) or not start_level <= end_level < self.num_ins:
                raise ValueError(f'end_level={end_level!r} must be -1 or in [start_level, '
                                 f'{self.num_ins - 1}] for in_channels={self.in_channels}')
            self.backbone_end_level = end_level + 1
            if num_outs != end_level - start_level + 1:
                raise ValueError(f'num_outs={num_outs} must equal end_level - start_level + 1 = '
                                 f'{end_level - start_level + 1} when end_level is not the last '
                                 f'level (no extra levels allowed)')
        self.start_level, self.end_level = start_level, end_level
        if add_extra_convs is True:
            add_extra_convs = 'on_input'
        if add_extra_convs is not False and add_extra_convs not in _EXTRA_SOURCES:
            raise ValueError(f'add_extra_convs must be a bool or one of {_EXTRA_SOURCES}, got '
                             f'{add_extra_convs!r}')
        self.add_extra_convs = add_extra_convs
        self.relu_before_extra_convs = relu_before_extra_convs
        self.no_norm_on_lateral = no_norm_on_lateral
        if not isinstance(upsample_cfg, dict) or not (
                'mode' in upsample_cfg or 'scale_factor' in upsample_cfg):
            raise ValueError(f'upsample_cfg must be a dict of F.interpolate arguments with a '
                             f'mode, got {upsample_cfg!r}')
        self.upsample_cfg = dict(upsample_cfg)
        self.upsample_cfg['mode'] = layers.interp_mode(self.upsample_cfg.get('mode', 'nearest'))
        self.fast_eval = True  # set_fast_eval(model, False) forbids the fast paths

        def block(cin: int, kernel: int, stride: int, norm: Any) -> ConvNormAct:
            return ConvNormAct(self.spatial_dims, cin, self.out_channels, kernel, stride=stride,
                               padding=kernel // 2, conv_cfg=conv_cfg, norm_cfg=norm,
                               act_cfg=act_cfg, inplace=False)

        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for i in range(self.start_level, self.backbone_end_level):
            self.lateral_convs.append(
                block(self.in_channels[i], 1, 1, None if no_norm_on_lateral else norm_cfg))
            self.fpn_convs.append(block(self.out_channels, 3, 1, norm_cfg))
        extra_levels = self.num_outs - self.backbone_end_level + self.start_level
        if self.add_extra_convs and extra_levels >= 1:
            for i in range(extra_levels):
                cin = self.out_channels
                if i == 0 and self.add_extra_convs == 'on_input':
                    cin = self.in_channels[self.backbone_end_level - 1]
                self.fpn_convs.append(block(cin, 3, 2, norm_cfg))

    def _upsample_add(self, lateral: Tensor, top: Tensor) -> Tensor:
        if 'scale_factor' in self.upsample_cfg:
            return lateral + nn.functional.interpolate(top, **self.upsample_cfg)
        if set(self.upsample_cfg) == {'mode'}:
            return add_nearest_upsampled(lateral, top, self.upsample_cfg['mode'],
                                         fast=self.fast_eval)
        up = nn.functional.interpolate(top, size=lateral.shape[2:], **self.upsample_cfg)
        return lateral + up

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Build the pyramid.

        Args:
            inputs: One feature map per ``in_channels`` entry, finest first, each
                ``(N, C_i, H_i, W_i)`` (2D) or ``(N, C_i, D_i, H_i, W_i)`` (3D).

        Returns:
            ``num_outs`` maps of ``out_channels`` channels, finest first; e.g. inputs at strides
            4..32 of a 512x512 image give ``(N, 256, 128, 128)`` ... ``(N, 256, 8, 8)`` for
            ``num_outs=5``.
        """
        check_features(inputs, self.num_ins, 'FPN.forward(inputs)', self.spatial_dims)
        laterals = [conv(inputs[i + self.start_level])
                    for i, conv in enumerate(self.lateral_convs)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = self._upsample_add(laterals[i - 1], laterals[i])
        used = len(laterals)
        outs = [self.fpn_convs[i](laterals[i]) for i in range(used)]
        if self.num_outs > used:
            if not self.add_extra_convs:
                step = (slice(None), slice(None)) + (slice(None, None, 2),) * self.spatial_dims
                for _ in range(self.num_outs - used):
                    # max-pool with kernel 1 and stride 2 is a strided subsample
                    outs.append(outs[-1][step].contiguous())
            else:
                source = {'on_input': inputs[self.backbone_end_level - 1],
                          'on_lateral': laterals[-1], 'on_output': outs[-1]}
                outs.append(self.fpn_convs[used](source[self.add_extra_convs]))
                for i in range(used + 1, self.num_outs):
                    x = outs[-1]
                    if self.relu_before_extra_convs:
                        x = torch.relu(x)
                    outs.append(self.fpn_convs[i](x))
        return tuple(outs)
