"""SEPC: Scale-Equalizing Pyramid Convolution (Wang et al., CVPR 2020), 2D (NCHW) and 3D (NCDHW).

A pyramid convolution (PConv) is a 3-D convolution over (scale, space) with kernel size 3 along
scale: for every target level ``l`` it sums three convolutions whose weights are shared by all
levels,

* ``w_same`` on ``P_l``,
* ``w_finer`` with stride 2 (padding 1) on the finer ``P_{l-1}``,
* ``w_coarser`` on the coarser ``P_{l+1}``, then (bi/tri)linear upsampling (align_corners=True,
  as the official ``F.upsample_bilinear``) to the size of ``P_l``,

(the finest level has no finer term, the coarsest no coarser one), followed by an *integrated*
BatchNorm whose statistics come from the whole pyramid (all levels flattened and concatenated,
one BatchNorm) and a ReLU. :class:`SEPC` stacks ``num_pconvs`` of them after an FPN: in an mmdet
config write ``neck=[dict(type='densekit.FPN', ...), dict(type='densekit.SEPC', ...)]`` (mmengine
builds a neck list as a ``Sequential``), or give ``SEPC(fpn=dict(...))`` to wrap the FPN.

* ``deform=False`` (SEPC-lite here, the default): plain convolutions only; no mmcv op, so it
  traces, exports and runs in 3D.
* ``deform=True`` (full SEPC): for target levels ``l >= 1`` the shared kernels are applied as
  mmcv deformable convolutions (v1, one deformable group) whose offsets come from a 3x3 conv of
  the same stride, shared across levels and zero-initialised, so the network starts as the plain
  PConv. 2D only (mmcv's op is 2D).

The official code's extra cls/loc convs and ``SepcRetinaHead`` (a RetinaHead with
``stacked_convs=0`` fed by separate cls / reg features) are not implemented: this neck returns
one feature map per level, a drop-in for FPN's output in front of any head. (The official
"SEPC-lite" keeps deformable convs in those cls/loc convs; here "lite" means no deformable conv
anywhere.)
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from densekit.errors import ArgumentError, positive_int
from densekit.layers import LayerFactory, check_features, interp_mode
from densekit.registry import MODELS

__all__ = ['IntegratedBatchNorm', 'PyramidConv', 'SEPC']



class IntegratedBatchNorm(_BatchNorm):
    """One BatchNorm over a whole pyramid (SEPC's iBN).

    In training the statistics of channel ``c`` are those of the concatenation of every level
    flattened to ``(N, C, H_l * W_l)``; the affine parameters and running statistics are shared
    by all levels. In eval every level is normalised with the shared running statistics.

    Example:
        >>> ibn = IntegratedBatchNorm(4)
        >>> [tuple(o.shape) for o in ibn([torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4)])]
        [(2, 4, 8, 8), (2, 4, 4, 4)]
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 3:
            raise ValueError(f'IntegratedBatchNorm expects (N, C, ...) maps, got '
                             f'{tuple(input.shape)}')

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:  # type: ignore[override]
        """Normalise a list of ``(N, C, *spatial_l)`` maps with shared statistics."""
        if isinstance(feats, Tensor):
            raise TypeError('IntegratedBatchNorm expects a list of feature maps, got a Tensor')
        if not (self.training or not self.track_running_stats):
            return [super(IntegratedBatchNorm, self).forward(f) for f in feats]
        flat = [f.flatten(2) for f in feats]
        lengths = [f.shape[-1] for f in flat]
        out = super().forward(torch.cat(flat, dim=-1))
        return [o.view_as(f) for o, f in zip(out.split(lengths, dim=-1), feats)]


class _DeformableTerm(nn.Module):
    """Offsets for one shared kernel: a conv with the main conv's geometry, zero-initialised."""

    def __init__(self, channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 2 * kernel_size * kernel_size, kernel_size,
                              stride=stride, padding=kernel_size // 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class PyramidConv(nn.Module):
    """One PConv: ``out_l = w_same * P_l + w_finer *_s2 P_{l-1} + up(w_coarser * P_{l+1})``.

    Args:
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        channels: Channels of every level (in = out).
        kernel_size: Odd kernel of the three shared convs.
        integrated_bn: Follow the sum with an :class:`IntegratedBatchNorm` and a ReLU (else the
            bare sum is returned, the paper's "PConv" ablation).
        deform: Deformable shared kernels on target levels ``>= deform_start_level`` (2D only).
        deform_start_level: First target level aligned by deformable convolution.
        bn_eps / bn_momentum: iBN epsilon and momentum.
    """

    def __init__(self, spatial_dims: int, channels: int, *, kernel_size: int = 3,
                 integrated_bn: bool = True, deform: bool = False, deform_start_level: int = 1,
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1) -> None:
        super().__init__()
        layers = LayerFactory(spatial_dims)
        self.spatial_dims = layers.spatial_dims
        self.channels = positive_int(channels, 'channels')
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ArgumentError(f'kernel_size must be a positive odd int, got {kernel_size!r}')
        if deform and self.spatial_dims != 2:
            raise ArgumentError(f'deform=True needs spatial_dims=2 (mmcv\'s deformable conv is '
                                f'2D), got spatial_dims={spatial_dims!r}; use deform=False')
        if not isinstance(deform_start_level, int) or deform_start_level < 0:
            raise ArgumentError(f'deform_start_level must be an int >= 0, got '
                                f'{deform_start_level!r}')
        self.kernel_size, self.deform = kernel_size, bool(deform)
        self.deform_start_level = deform_start_level
        pad = kernel_size // 2
        # state-dict names: same / finer / coarser = the official Pconv[1] / Pconv[2] / Pconv[0]
        self.same = layers.conv(channels, channels, kernel_size, padding=pad)
        self.finer = layers.conv(channels, channels, kernel_size, stride=2, padding=pad)
        self.coarser = layers.conv(channels, channels, kernel_size, padding=pad)
        self.upsample_mode = interp_mode('linear', self.spatial_dims)
        if self.deform:
            self.offsets = nn.ModuleDict({
                'same': _DeformableTerm(channels, kernel_size, 1),
                'finer': _DeformableTerm(channels, kernel_size, 2),
                'coarser': _DeformableTerm(channels, kernel_size, 1)})
        self.ibn = IntegratedBatchNorm(channels, eps=bn_eps, momentum=bn_momentum) \
            if integrated_bn else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 0.01) weights and zero biases (the official init); offsets stay zero."""
        for conv in (self.same, self.finer, self.coarser):
            nn.init.normal_(conv.weight, 0.0, 0.01)
            nn.init.zeros_(conv.bias)
        if self.deform:
            for term in self.offsets.values():
                term.reset_parameters()

    def _term(self, name: str, level: int, x: Tensor) -> Tensor:
        conv = getattr(self, name)
        if not self.deform or level < self.deform_start_level:
            return conv(x)
        from mmcv.ops import deform_conv2d

        offset = self.offsets[name](x)
        dtype = conv.weight.dtype  # mmcv's op wants one dtype (autocast may hand in bf16 maps)
        # mmcv refuses maps smaller than the kernel even when padded: pad explicitly (its
        # bilinear sampling reads zeros outside the map, as it reads the zero padding)
        pad_h, pad_w = conv.padding
        x = F.pad(x.to(dtype), (pad_w, pad_w, pad_h, pad_h))
        out = deform_conv2d(x, offset.to(dtype), conv.weight, conv.stride, 0, conv.dilation,
                            1, 1)
        return out + conv.bias.view(1, -1, 1, 1)

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        """``L`` maps ``(N, C, *spatial_l)``, finest first (level sizes halve, rounding up)."""
        outs = []
        for level, x in enumerate(feats):
            y = self._term('same', level, x)
            if level > 0:
                finer = self._term('finer', level, feats[level - 1])
                if finer.shape[2:] != x.shape[2:]:
                    raise ValueError(
                        f'PyramidConv: the stride-2 conv of level {level - 1} '
                        f'({tuple(feats[level - 1].shape[2:])}) gives {tuple(finer.shape[2:])}, '
                        f'not the size {tuple(x.shape[2:])} of level {level}; each level must '
                        f'be ceil(previous / 2)')
                y = y + finer
            if level + 1 < len(feats):
                coarse = self._term('coarser', level, feats[level + 1])
                y = y + F.interpolate(coarse, size=x.shape[2:], mode=self.upsample_mode,
                                      align_corners=True)
            outs.append(y)
        if self.ibn is not None:
            outs = [torch.relu(o) for o in self.ibn(outs)]
        return outs


@MODELS.register_module()
class SEPC(BaseModule):
    """Scale-Equalizing Pyramid Convolution neck: ``num_pconvs`` stacked PConvs + iBN + ReLU.

    Args:
        in_channels: Channels of every input level (the FPN's ``out_channels``); an int, or a
            list with one equal entry per level (mmdet's SEPC takes ``[256] * 5``).
        num_levels: Number of pyramid levels it takes and returns (>= 2).
        num_pconvs: Stacked PConvs (4 in the paper).
        kernel_size: Kernel of the shared convs.
        integrated_bn: iBN + ReLU after every PConv (False: the paper's bare "PConv").
        deform: Full SEPC: deformable shared kernels on levels ``>= 1`` (mmcv op, 2D only).
            False (default) is the light, mmcv-free version.
        fpn: Optional neck config (e.g. ``dict(type='densekit.FPN', ...)``) built in front of
            the PConvs, so ``SEPC(fpn=...)`` alone replaces FPN; its ``out_channels`` and
            ``num_outs`` must match ``in_channels`` / ``num_levels``.
        bn_eps / bn_momentum: iBN epsilon and momentum.
        init_cfg: mmengine init config (the PConvs' own init is N(0, 0.01)).
        spatial_dims: 2 for NCHW, 3 for NCDHW.

    Raises:
        ArgumentError: unequal or non-positive channels, ``num_levels < 2``, ``deform`` in 3D,
            an ``fpn`` whose outputs do not match.

    Example (2D, after a 4-level FPN of 8 channels):
        >>> sepc = SEPC(8, num_levels=4, num_pconvs=2)
        >>> outs = sepc([torch.rand(2, 8, 16 // 2**i, 16 // 2**i) for i in range(4)])
        >>> [tuple(o.shape) for o in outs]
        [(2, 8, 16, 16), (2, 8, 8, 8), (2, 8, 4, 4), (2, 8, 2, 2)]
    """

    def __init__(self, in_channels: Any, num_levels: int = 5, *, num_pconvs: int = 4,
                 kernel_size: int = 3, integrated_bn: bool = True, deform: bool = False,
                 fpn: Optional[dict] = None, bn_eps: float = 1e-5, bn_momentum: float = 0.1,
                 init_cfg: Any = None, spatial_dims: int = 2) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_levels = positive_int(num_levels, 'num_levels')
        if self.num_levels < 2:
            raise ArgumentError(f'num_levels must be >= 2 (a PConv mixes adjacent levels), got '
                                f'{num_levels!r}')
        if isinstance(in_channels, (list, tuple)):
            if len(in_channels) != self.num_levels or len(set(in_channels)) != 1:
                raise ArgumentError(f'in_channels={list(in_channels)!r} must list '
                                    f'num_levels={self.num_levels} equal channel counts (the '
                                    f'PConv kernels are shared across levels)')
            in_channels = in_channels[0]
        self.channels = positive_int(in_channels, 'in_channels')
        self.num_pconvs = positive_int(num_pconvs, 'num_pconvs')
        self.spatial_dims = LayerFactory(spatial_dims).spatial_dims
        self.deform = bool(deform)
        self.fpn = None
        if fpn is not None:
            if not isinstance(fpn, dict) or 'type' not in fpn:
                raise ArgumentError(f'fpn must be a neck config dict with a type, got {fpn!r}')
            self.fpn = MODELS.build(fpn)
            outs, chans = getattr(self.fpn, 'num_outs', None), getattr(self.fpn, 'out_channels',
                                                                         None)
            if outs != self.num_levels or chans != self.channels:
                raise ArgumentError(f'fpn gives {outs} levels of {chans} channels, but SEPC has '
                                    f'num_levels={self.num_levels}, in_channels={self.channels}')
        self.pconvs = nn.ModuleList(
            PyramidConv(self.spatial_dims, self.channels, kernel_size=kernel_size,
                        integrated_bn=integrated_bn, deform=self.deform, bn_eps=bn_eps,
                        bn_momentum=bn_momentum)
            for _ in range(self.num_pconvs))

    def init_weights(self) -> None:
        """The wrapped FPN's init, then the PConvs' N(0, 0.01) / zero-offset init."""
        super().init_weights()
        for pconv in self.pconvs:
            pconv.reset_parameters()

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """``num_levels`` maps ``(N, C, *spatial_l)`` (or the FPN's inputs) -> same shapes.

        Each level must be ``ceil(previous / 2)`` per axis, as an FPN's outputs are.
        """
        feats = self.fpn(inputs) if self.fpn is not None else inputs
        check_features(feats, self.num_levels, 'SEPC.forward(inputs)', self.spatial_dims)
        for i, f in enumerate(feats):
            if f.shape[1] != self.channels:
                raise ValueError(f'SEPC.forward(inputs): level {i} has {f.shape[1]} channels, '
                                 f'expected in_channels={self.channels}')
        feats = list(feats)
        for pconv in self.pconvs:
            feats = pconv(feats)
        return tuple(feats)
