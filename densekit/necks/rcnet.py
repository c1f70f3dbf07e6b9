"""RCNet: Reverse Feature Pyramid + Cross-scale Shift Network (Zong et al., ACM MM 2021), 2D/3D.

A drop-in replacement for FPN (same inputs, same ``num_outs`` maps of ``out_channels``):

* **Laterals**: 1x1 conv (+ norm) per used backbone level; extra coarser levels come from the
  last lateral by a 1x1 conv and a 2x max-pool (odd sizes rounded up, as the official
  replicate padding does), chained.
* **RevFP** (reverse feature pyramid): one bottom-up pass with local top-down input. Level ``i``
  fuses its lateral ``C_i``, the upsampled coarser lateral ``up(C_{i+1})`` and the max-pooled
  finer *output* ``down(P_{i-1})``:
  ``x = gate(C_i, fgu(up(C_{i+1})))``, then ``P_i = post(gate(pre(x), down(P_{i-1})))``;
  the finest level has no ``down`` input (``P = post(x)``), the coarsest no ``up`` input
  (``P = post(gate(C_top, down(P_{top-1})))``).

  - feature-guided upsampling ``fgu``: a 3x3 conv of ``[C_i, up]`` to one channel, times a
    learnable temperature (init 1) and ``C^-1/2``, softmax over the positions, rescaled to mean
    1, multiplies ``up``; the conv starts at zero, so the weights start uniform (= 1);
  - ``gate(a, b) = w a + (1 - w) b`` with a per-image scalar ``w = sigmoid(1x1 conv of
    [GAP a, GAP b])``, zero-initialised so ``w = 0.5`` at the start;
  - fusion convs ``pre`` / ``post``: ReLU -> 3x3 conv -> norm. The paper uses DCNv2; here plain
    convs are the default (no mmcv op: traces, exports, runs in 3D) and
    ``fusion_conv='dcnv2'`` selects mmcv's modulated deformable conv (2D only).
* **CSN** (cross-scale shift network): all RevFP outputs are brought to the resolution of level
  ``csn_level`` (finer ones by adaptive max-pool (:func:`~densekit.layers.adaptive_max_pool`,
  which exports with dynamic sizes), coarser ones by (bi/tri)linear upsampling) and
  stacked along a level axis. Channel groups of ``shift_channels`` are rolled along the level
  axis by ``shifts`` (default +1, -1, +2, -2, cyclic: level ``l`` receives group ``j`` from level
  ``(l - shifts[j]) mod L``), concatenated to the unshifted channels, and a per-level (unshared)
  1x1 conv + norm + ReLU + 1x1 conv maps them back, added to the input (residual). A dual
  global context (spatial: attention pooling of the level mean; scale: attention over the
  levels of their spatial means) is broadcast-added, and the result, resized back per level, is
  added to the RevFP output.
"""
from __future__ import annotations

from typing import Any, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from densekit.errors import ArgumentError, positive_int
from densekit.layers import (
    ConvNormAct,
    LayerFactory,
    adaptive_max_pool,
    check_features,
    resize,
    size_tensor,
)
from densekit.registry import MODELS

__all__ = ['RCNet']

_FUSION_CONVS = ('conv', 'dcnv2')



def _max_pool_half(x: Tensor) -> Tensor:
    """2x max-pool, stride 2, odd sizes rounded up (a partial window = replicate padding)."""
    pool = F.max_pool2d if x.dim() == 4 else F.max_pool3d
    return pool(x, kernel_size=2, stride=2, ceil_mode=True)


def _adaptive_max(x: Tensor, like: Tensor) -> Tensor:
    """Adaptive max-pool of ``x`` to the spatial size of ``like`` (the same values as
    ``F.adaptive_max_pool2d/3d``; the sizes stay tensors, so the neck exports with dynamic
    sizes)."""
    return adaptive_max_pool(x, [size_tensor(like, d) for d in range(2, like.dim())])


class _Gate(nn.Module):
    """``w a + (1 - w) b`` with ``w = sigmoid(W [GAP a, GAP b] + b)`` one scalar per image."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(2 * channels, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def weight(self, a: Tensor, b: Tensor) -> Tensor:
        """The gate ``w``, ``(N, 1, 1, ...)`` broadcastable to the maps."""
        pooled = torch.cat([a.flatten(2).mean(-1), b.flatten(2).mean(-1)], dim=1)
        w = torch.sigmoid(self.fc(pooled))
        return w.view(w.shape[0], 1, *([1] * (a.dim() - 2)))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        w = self.weight(a, b)
        return w * a + (1 - w) * b


class _GuidedUpsample(nn.Module):
    """Position weights (mean 1) from ``[lateral, up]``, multiplying ``up``."""

    def __init__(self, layers: LayerFactory, channels: int) -> None:
        super().__init__()
        self.conv = layers.conv(2 * channels, 1, 3, padding=1)
        self.temperature = nn.Parameter(torch.ones(1))
        self.scale = channels ** -0.5
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, lateral: Tensor, up: Tensor) -> Tensor:
        logits = self.conv(torch.cat([lateral, up], dim=1)) * (self.temperature * self.scale)
        w = torch.softmax(logits.flatten(2), dim=-1)
        w = (w / w.mean(dim=-1, keepdim=True)).view_as(logits)  # = softmax * (number of positions)
        return up * w


class _FusionConv(nn.Module):
    """ReLU -> 3x3 conv (plain or mmcv DCNv2) -> norm."""

    def __init__(self, layers: LayerFactory, channels: int, kind: str, norm_cfg: Any) -> None:
        super().__init__()
        self.kind = kind
        if kind == 'dcnv2':
            from mmcv.ops import ModulatedDeformConv2dPack

            self.conv = ModulatedDeformConv2dPack(channels, channels, 3, padding=1,
                                                  deform_groups=2, bias=norm_cfg is None)
        else:
            self.conv = layers.conv(channels, channels, 3, padding=1, bias=norm_cfg is None)
        self.norm = layers.norm(norm_cfg, channels)[1] if norm_cfg is not None else None

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(x)
        if self.kind == 'dcnv2':
            x = x.to(self.conv.weight.dtype)  # mmcv's op wants one dtype (autocast: bf16 maps)
        x = self.conv(x)
        return self.norm(x) if self.norm is not None else x


class _RevFPNode(nn.Module):
    """One RevFP fusion node (see the module docstring)."""

    def __init__(self, layers: LayerFactory, channels: int, has_up: bool, has_down: bool,
                 fusion_conv: str, norm_cfg: Any) -> None:
        super().__init__()
        self.has_up, self.has_down = has_up, has_down
        if has_up:
            self.guided_up = _GuidedUpsample(layers, channels)
            self.gate_up = _Gate(channels)
        if has_down:
            self.gate_down = _Gate(channels)
        if has_up and has_down:
            self.pre = _FusionConv(layers, channels, fusion_conv, norm_cfg)
        self.post = _FusionConv(layers, channels, fusion_conv, norm_cfg)

    def forward(self, lateral: Tensor, coarser: Any, finer_out: Any) -> Tensor:
        x = lateral
        if self.has_up:
            up = resize(coarser, size=lateral.shape[2:], mode='linear', align_corners=False)
            x = self.gate_up(lateral, self.guided_up(lateral, up))
        if self.has_down:
            down = _max_pool_half(finer_out)
            if down.shape[2:] != lateral.shape[2:]:
                raise ValueError(f'RCNet: a level of size {tuple(finer_out.shape[2:])} pools to '
                                 f'{tuple(down.shape[2:])}, not the next level\'s size '
                                 f'{tuple(lateral.shape[2:])}; each level must be '
                                 f'ceil(previous / 2)')
            if self.has_up:
                x = self.pre(x)
            x = self.gate_down(x, down)
        return self.post(x)


class _CrossScaleShift(nn.Module):
    """CSN on ``L`` maps: shift channel groups across levels + per-level MLP + dual context."""

    def __init__(self, layers: LayerFactory, channels: int, num_levels: int, ref_level: int,
                 shifts: Sequence[int], group: int, norm_cfg: Any) -> None:
        super().__init__()
        self.ref_level, self.shifts, self.group = ref_level, tuple(shifts), group
        self.upsample_mode = layers.interp_mode('linear')
        wide = channels + group * len(self.shifts)
        self.mixers = nn.ModuleList(nn.Sequential(
            ConvNormAct(layers.spatial_dims, wide, channels, 1, norm_cfg=norm_cfg,
                        act_cfg=dict(type='ReLU')),
            layers.conv(channels, channels, 1)) for _ in range(num_levels))
        self.spatial_logits = layers.conv(channels, 1, 1)
        self.spatial_out = nn.Linear(channels, channels)
        self.scale_logits = nn.Linear(channels, 1)
        self.scale_out = nn.Linear(channels, channels)

    def shift(self, stacked: Tensor) -> Tensor:
        """``(N, L, C, ...)`` -> the rolled groups ``(N, L, G * len(shifts), ...)``."""
        g = self.group
        return torch.cat([torch.roll(stacked[:, :, j * g:(j + 1) * g], shifts=s, dims=1)
                          for j, s in enumerate(self.shifts)], dim=2)

    def context(self, stacked: Tensor) -> Tensor:
        """Spatial + scale global context of ``(N, L, C, ...)``, as ``(N, C)``."""
        mean = stacked.mean(dim=1)                                         # (N, C, ...)
        attn = torch.softmax(self.spatial_logits(mean).flatten(2), dim=-1)  # (N, 1, P)
        spatial = self.spatial_out((mean.flatten(2) * attn).sum(-1))       # (N, C)
        level_means = stacked.flatten(3).mean(-1)                          # (N, L, C)
        weights = torch.softmax(self.scale_logits(level_means), dim=1)     # (N, L, 1)
        scale = self.scale_out((level_means * weights).sum(1))             # (N, C)
        return spatial + scale

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        size = feats[self.ref_level].shape[2:]
        same = [_adaptive_max(f, feats[self.ref_level]) if i < self.ref_level else
                f if i == self.ref_level else
                F.interpolate(f, size=size, mode=self.upsample_mode, align_corners=False)
                for i, f in enumerate(feats)]
        stacked = torch.stack(same, dim=1)                                 # (N, L, C, ...)
        wide = torch.cat([stacked, self.shift(stacked)], dim=2)
        ctx = self.context(stacked)
        ctx = ctx.view(*ctx.shape, *([1] * (stacked.dim() - 3)))
        outs = []
        for i, (f, mixer) in enumerate(zip(feats, self.mixers)):
            y = stacked[:, i] + mixer(wide[:, i]) + ctx
            if i < self.ref_level:
                y = F.interpolate(y, size=f.shape[2:], mode=self.upsample_mode,
                                  align_corners=False)
            elif i > self.ref_level:
                y = _adaptive_max(y, f)
            outs.append(f + y)
        return outs


@MODELS.register_module()
class RCNet(BaseModule):
    """RCNet neck (RevFP + CSN), a drop-in for FPN; 2D or 3D.

    Args:
        in_channels: Channels of each backbone level, finest first, e.g. ``[512, 1024, 2048]``.
        out_channels: Channels of every output level.
        num_outs: Output levels (``>= len(in_channels) - start_level``; the rest are extra
            coarser levels from the last lateral).
        start_level: First backbone level used.
        norm_cfg: Norm of the laterals, fusion convs and CSN mixers (BN in the paper's
            RetinaNet config); None for none.
        fusion_conv: ``'conv'`` (plain 3x3, default, no mmcv op) or ``'dcnv2'`` (mmcv modulated
            deformable conv, ``deform_groups=2``, as the paper; 2D only).
        csn_level: Index of the output level whose resolution the CSN works at (1 = P4).
        shifts: Level shifts of the channel groups (the paper: +1, -1, +2, -2).
        shift_channels: Channels per shifted group (default ``out_channels // 16``).
        init_cfg: mmengine init config (gates and guided-upsampling convs stay zero).
        spatial_dims: 2 for NCHW, 3 for NCDHW.

    Raises:
        ArgumentError: bad channels / levels, a shift not smaller than ``num_outs``, more shifted
            channels than ``out_channels``, an unknown ``fusion_conv`` or DCNv2 in 3D.

    Example (2D, three backbone levels of a 64x64 image, one extra level):
        >>> neck = RCNet([8, 16, 32], 16, num_outs=4)
        >>> outs = neck([torch.rand(1, c, 8 // 2**i, 8 // 2**i) for i, c in
        ...              enumerate([8, 16, 32])])
        >>> [tuple(o.shape) for o in outs]
        [(1, 16, 8, 8), (1, 16, 4, 4), (1, 16, 2, 2), (1, 16, 1, 1)]
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, num_outs: int = 5, *,
                 start_level: int = 0, norm_cfg: Any = dict(type='BN'),  # noqa: B006
                 fusion_conv: str = 'conv', csn_level: int = 1,
                 shifts: Sequence[int] = (1, -1, 2, -2), shift_channels: Any = None,
                 init_cfg: Any = dict(type='Xavier', layer=['Conv2d', 'Conv3d'],  # noqa: B006
                                      distribution='uniform'),
                 spatial_dims: int = 2) -> None:
        super().__init__(init_cfg=init_cfg)
        layers = LayerFactory(spatial_dims)
        self.spatial_dims = layers.spatial_dims
        if not isinstance(in_channels, (list, tuple)) or not in_channels:
            raise ArgumentError(f'in_channels must be a non-empty list of ints, got '
                                f'{in_channels!r}')
        self.in_channels = [positive_int(c, 'in_channels item') for c in in_channels]
        self.out_channels = positive_int(out_channels, 'out_channels')
        self.num_outs = positive_int(num_outs, 'num_outs')
        if not isinstance(start_level, int) or not 0 <= start_level < len(self.in_channels):
            raise ArgumentError(f'start_level={start_level!r} must index one of the '
                                f'{len(self.in_channels)} input levels')
        self.start_level = start_level
        used = len(self.in_channels) - start_level
        if self.num_outs < max(used, 2):
            raise ArgumentError(f'num_outs={num_outs} must be >= the {used} input levels used '
                                f'(start_level={start_level}) and >= 2')
        if fusion_conv not in _FUSION_CONVS:
            raise ArgumentError(f'fusion_conv must be one of {_FUSION_CONVS}, got '
                                f'{fusion_conv!r}')
        if fusion_conv == 'dcnv2' and self.spatial_dims != 2:
            raise ArgumentError(f"fusion_conv='dcnv2' needs spatial_dims=2 (mmcv's deformable "
                                f"conv is 2D), got spatial_dims={spatial_dims!r}")
        if not isinstance(csn_level, int) or not 0 <= csn_level < self.num_outs:
            raise ArgumentError(f'csn_level={csn_level!r} must index one of the '
                                f'num_outs={self.num_outs} output levels')
        shifts = tuple(shifts)
        if not shifts or not all(isinstance(s, int) and 0 < abs(s) < self.num_outs
                                 for s in shifts):
            raise ArgumentError(f'shifts={shifts!r} must be non-zero ints with |shift| < '
                                f'num_outs={self.num_outs} (a shift by the level count is the '
                                f'identity)')
        if shift_channels is None:
            shift_channels = self.out_channels // 16
        group = positive_int(shift_channels, 'shift_channels (default out_channels // 16)')
        if group * len(shifts) > self.out_channels:
            raise ArgumentError(f'{len(shifts)} shifted groups of shift_channels={group} exceed '
                                f'out_channels={self.out_channels}')
        self.fusion_conv, self.csn_level, self.shifts = fusion_conv, csn_level, shifts
        self.shift_channels = group

        c = self.out_channels
        self.lateral_convs = nn.ModuleList(
            ConvNormAct(self.spatial_dims, cin, c, 1, norm_cfg=norm_cfg, act_cfg=None)
            for cin in self.in_channels[start_level:])
        self.extra_convs = nn.ModuleList(
            ConvNormAct(self.spatial_dims, c, c, 1, norm_cfg=norm_cfg, act_cfg=None)
            for _ in range(self.num_outs - used))
        self.nodes = nn.ModuleList(
            _RevFPNode(layers, c, has_up=i < self.num_outs - 1, has_down=i > 0,
                       fusion_conv=fusion_conv, norm_cfg=norm_cfg)
            for i in range(self.num_outs))
        self.csn = _CrossScaleShift(layers, c, self.num_outs, csn_level, shifts, group, norm_cfg)

    def init_weights(self) -> None:
        """``init_cfg`` (Xavier by default), then the zero starts of gates and guided upsampling
        and zero offsets of DCNv2."""
        super().init_weights()
        for m in self.modules():
            if isinstance(m, (_Gate, _GuidedUpsample)):
                m.reset_parameters()
            elif self.fusion_conv == 'dcnv2' and hasattr(m, 'conv_offset'):
                nn.init.zeros_(m.conv_offset.weight)
                nn.init.zeros_(m.conv_offset.bias)

    def laterals(self, inputs: Sequence[Tensor]) -> List[Tensor]:
        """The ``num_outs`` lateral maps ``C_i`` (used levels, then the pooled extra ones)."""
        lats = [conv(inputs[i + self.start_level]) for i, conv in enumerate(self.lateral_convs)]
        for conv in self.extra_convs:
            lats.append(_max_pool_half(conv(lats[-1])))
        return lats

    def revfp(self, lats: Sequence[Tensor]) -> List[Tensor]:
        """The reverse feature pyramid's bottom-up pass."""
        outs: List[Tensor] = []
        for i, node in enumerate(self.nodes):
            coarser = lats[i + 1] if i + 1 < len(lats) else None
            outs.append(node(lats[i], coarser, outs[-1] if outs else None))
        return outs

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Backbone maps ``(N, C_i, *spatial_i)``, finest first -> ``num_outs`` maps
        ``(N, out_channels, *spatial)``; each level ``ceil(previous / 2)`` per axis."""
        check_features(inputs, len(self.in_channels), 'RCNet.forward(inputs)', self.spatial_dims)
        return tuple(self.csn(self.revfp(self.laterals(inputs))))
