"""PIIP: Parameter-Inverted Image Pyramid backbone wrapper (``densekit.PIIP``).

PIIP (Zhu et al., "Parameter-Inverted Image Pyramid Networks", NeurIPS 2024) runs several
pretrained backbones ("branches") on several resolutions of the same image with the model sizes
*inverted*: branch 1 is the largest model and sees the smallest image, the last branch is the
smallest model and sees the full-resolution input. Each branch's stages are split into ``K``
contiguous ranges; after every range, adjacent branches exchange information through
bidirectional deformable cross-attention units (:class:`densekit.PIIPInteraction`), from the
finest pair to the coarsest. The branches' final maps are projected to the largest branch's
width ([3x3 conv, GN, ReLU] x 2), upsampled to the stride-16 grid, summed with learnable scalar
weights (init 1) and turned into a ViTDet-style simple pyramid at strides 4/8/16/32.

Any backbone with an adapter works as a branch (mmseg ``VisionTransformer``, mmdet/mmseg
``ResNet``, densekit backbones exposing ``stages``; see :mod:`densekit.backbones.piip_adapters`).
All interaction gammas start at 0, so an untrained PIIP computes exactly what its branches
compute alone on their resized inputs.

Example:
    >>> vit = lambda d, h: dict(type='mmseg.VisionTransformer', img_size=64, embed_dims=d,
    ...                         num_layers=4, num_heads=h)
    >>> piip = MODELS.build(dict(type='densekit.PIIP', branches=[vit(64, 4), vit(32, 2)],
    ...                          resolutions=[32, 64], num_interactions=2,
    ...                          interaction_cfg=dict(num_heads=4)))
    >>> [tuple(f.shape) for f in piip(torch.rand(1, 3, 64, 64))]
    [(1, 64, 16, 16), (1, 64, 8, 8), (1, 64, 4, 4), (1, 64, 2, 2)]
    >>> piip.out_channels, piip.strides
    ([64, 64, 64, 64], (4, 8, 16, 32))
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule, ModuleList
from torch import nn

from densekit.backbones.contract import ShapeContract, as_stride_tuples
from densekit.backbones.piip_adapters import PIIPBranchAdapter, build_piip_adapter
from densekit.backbones.piip_interaction import PIIPInteraction, check_interaction_width
from densekit.errors import positive_int
from densekit.layers import ConvNormAct
from densekit.registry import MODELS

_INTERACTION_KEYS = ('num_heads', 'num_points', 'value_ratio', 'ffn_ratio', 'drop_path_rate',
                     'norm_eps')
PYRAMID_STRIDES = (4, 8, 16, 32)
#: the same per axis (the shape contract of densekit.backbones.contract)
PYRAMID_OUT_STRIDES = as_stride_tuples(PYRAMID_STRIDES, 2)
MERGE_STRIDE = 16


def _check_norm(norm_cfg: dict, channels: int, arg: str) -> None:
    if not isinstance(norm_cfg, dict) or 'type' not in norm_cfg:
        raise TypeError(f'{arg} must be a dict with a "type" key, got {norm_cfg!r}')
    groups = norm_cfg.get('num_groups')
    if norm_cfg['type'] == 'GN' and (groups is None or channels % groups):
        raise ValueError(f'{arg}={norm_cfg!r}: GroupNorm needs num_groups dividing the '
                         f'{channels} merge/pyramid channels (out_channels)')


def _norm(norm_cfg: dict, channels: int) -> nn.Module:
    return build_norm_layer(norm_cfg, channels)[1]


def _kaiming_fan_out(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@MODELS.register_module()
class PIIPSimplePyramid(ShapeContract, BaseModule):
    """ViTDet simple feature pyramid from one stride-16 map: strides 4, 8, 16, 32.

    Stride 4 = deconv2x2, norm, GELU, deconv2x2; stride 8 = deconv2x2; stride 16 = identity;
    stride 32 = 2x2 max-pool (ceil mode). Given the input image size, each level is cropped to
    ``ceil(H / s) x ceil(W / s)`` (the stride-16 grid of an odd-sized, corner-padded input maps
    to ``4 * ceil(H / 16)`` rows at stride 4; the extra rows only see padding).

    Args:
        in_channels: Channels of the input map (and of every level).
        norm_cfg: Norm after the first deconv (GroupNorm(32) by default).

    Example:
        >>> pyr = PIIPSimplePyramid(64)
        >>> [tuple(f.shape[-2:]) for f in pyr(torch.rand(1, 64, 5, 6), image_hw=(70, 90))]
        [(18, 23), (9, 12), (5, 6), (3, 3)]
    """

    def __init__(self, in_channels: int, norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        positive_int(in_channels, 'in_channels')
        norm_cfg = dict(type='GN', num_groups=32) if norm_cfg is None else norm_cfg
        _check_norm(norm_cfg, in_channels, 'norm_cfg')
        c = in_channels
        self.in_channels = in_channels
        self.out_channels = [c] * 4
        self.strides = PYRAMID_STRIDES
        self.out_strides = PYRAMID_OUT_STRIDES
        self.up4 = nn.Sequential(nn.ConvTranspose2d(c, c, 2, 2), _norm(norm_cfg, c), nn.GELU(),
                                 nn.ConvTranspose2d(c, c, 2, 2))
        self.up8 = nn.ConvTranspose2d(c, c, 2, 2)
        self.down32 = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
        _kaiming_fan_out(self)

    def forward(self, x: torch.Tensor,
                image_hw: Optional[Tuple[int, int]] = None) -> Tuple[torch.Tensor, ...]:
        """``(B, C, h, w)`` stride-16 map to four maps at strides 4, 8, 16, 32."""
        levels = [self.up4(x), self.up8(x), x, self.down32(x)]
        if image_hw is not None:
            levels = [lvl[..., :math.ceil(image_hw[0] / s), :math.ceil(image_hw[1] / s)]
                      for lvl, s in zip(levels, self.strides)]
        return tuple(levels)


@MODELS.register_module()
class PIIP(ShapeContract, BaseModule):
    """Parameter-Inverted Image Pyramid backbone (see the module docstring).

    Args:
        branches: Backbone configs (or built modules), ordered from the largest model (smallest
            image) to the smallest model (full-resolution image). At least two.
        resolutions: Reference input size of each branch, e.g. ``[672, 1120, 1568]``; branch
            ``i`` sees the input bilinearly resized by ``resolutions[i] / max(resolutions)``.
            Give exactly one of ``resolutions`` and ``scales``.
        scales: Resize factor of each branch, in ``(0, 1]``; the last must be 1.
        num_interactions: ``K``, the number of interaction points. Each branch's stages are
            split into ``K`` contiguous ranges, so ``K`` may not exceed any branch's stage count
            (ViT: layers; ResNet: 4 residual stages).
        interaction_cfg: Settings of every :class:`PIIPInteraction` (keys ``num_heads``,
            ``num_points``, ``value_ratio``, ``ffn_ratio``, ``drop_path_rate``, ``norm_eps``).
        out_channels: Channels of the merged map and the pyramid (default: branch 1's width).
        merge_norm_cfg: Norm of the merge convs (default GroupNorm(32)).
        pyramid_norm_cfg: Norm inside the stride-4 pyramid level (default GroupNorm(32)).
        check_order: Check that model sizes (parameter counts) do not grow with resolution.
        init_cfg: mmengine init config.

    Attributes:
        out_channels (list[int]): Channels of the four outputs.
        strides (tuple[int]): Strides of the four outputs, ``(4, 8, 16, 32)``.
        scales (list[float]): Input resize factor of each branch.

    Shape:
        ``(B, 3, H, W)`` -> 4 maps ``(B, out_channels, ceil(H / s), ceil(W / s))`` for
        ``s in (4, 8, 16, 32)``.
    """

    def __init__(self, branches: Sequence, resolutions: Optional[Sequence[int]] = None,
                 scales: Optional[Sequence[float]] = None, num_interactions: int = 4,
                 interaction_cfg: Optional[Dict] = None, out_channels: Optional[int] = None,
                 merge_norm_cfg: Optional[dict] = None, pyramid_norm_cfg: Optional[dict] = None,
                 check_order: bool = True, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(branches, (list, tuple)) or len(branches) < 2:
            raise ValueError(f'branches must be a list of at least 2 backbone configs, got '
                             f'{branches!r:.200}')
        n = len(branches)
        self.scales = self._parse_scales(n, resolutions, scales)
        self.branches = ModuleList([self._build_branch(i, cfg) for i, cfg in enumerate(branches)])
        if check_order:
            self._check_order()

        positive_int(num_interactions, 'num_interactions')
        for i, adapter in enumerate(self.branches):
            if num_interactions > adapter.num_stages:
                raise ValueError(
                    f'num_interactions={num_interactions} exceeds the {adapter.num_stages} '
                    f'stages of branch {i + 1} ({type(adapter.backbone).__name__}); each '
                    'interaction point needs at least one stage per branch')
        self.num_interactions = num_interactions
        self.stage_ranges = [self._split(a.num_stages, num_interactions) for a in self.branches]

        icfg = dict(interaction_cfg or {})
        unknown = sorted(set(icfg) - set(_INTERACTION_KEYS))
        if unknown:
            raise ValueError(f'interaction_cfg has unknown keys {unknown}; allowed: '
                             f'{list(_INTERACTION_KEYS)}')
        heads = icfg.get('num_heads', 16)
        ratio = icfg.get('value_ratio', 0.5)
        self.interactions = ModuleList()
        for k in range(num_interactions):
            widths = [a.stage_widths[rng[k][1] - 1] for a, rng in zip(self.branches,
                                                                      self.stage_ranges)]
            for i, w in enumerate(widths):
                check_interaction_width(
                    w, heads, ratio, where=f' (interaction_cfg.num_heads; branch {i + 1} '
                    f'at interaction point {k})')
            self.interactions.append(ModuleList(
                [PIIPInteraction(dims=(widths[j], widths[j + 1]), **icfg) for j in range(n - 1)]))

        self.branch_widths = [a.width for a in self.branches]
        if out_channels is None:
            out_channels = self.branch_widths[0]
        positive_int(out_channels, 'out_channels')
        merge_norm_cfg = dict(type='GN', num_groups=32) if merge_norm_cfg is None \
            else merge_norm_cfg
        _check_norm(merge_norm_cfg, out_channels, 'merge_norm_cfg')
        c = out_channels
        block = dict(kernel_size=3, padding=1, bias=False, norm_cfg=merge_norm_cfg,
                     act_cfg=dict(type='ReLU'))
        self.merge = ModuleList([
            nn.Sequential(ConvNormAct(2, w, c, **block), ConvNormAct(2, c, c, **block))
            for w in self.branch_widths])
        self.merge_weights = nn.Parameter(torch.ones(n))
        self.pyramid = PIIPSimplePyramid(c, norm_cfg=pyramid_norm_cfg)
        self.out_channels = [c] * 4
        self.strides = PYRAMID_STRIDES
        self.out_strides = PYRAMID_OUT_STRIDES

    @staticmethod
    def _parse_scales(n: int, resolutions: Optional[Sequence[int]],
                      scales: Optional[Sequence[float]]) -> List[float]:
        if (resolutions is None) == (scales is None):
            raise ValueError('give exactly one of resolutions (e.g. [672, 1120, 1568]) and '
                             f'scales (e.g. [0.43, 0.71, 1.0]); got resolutions={resolutions!r}, '
                             f'scales={scales!r}')
        name, values = ('resolutions', resolutions) if scales is None else ('scales', scales)
        if not isinstance(values, (list, tuple)) or len(values) != n:
            raise ValueError(f'{name} must list one value per branch ({n} branches), got '
                             f'{values!r}')
        if any(not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0
               for v in values):
            raise ValueError(f'{name} must be positive numbers, got {values!r}')
        if any(b < a for a, b in zip(values, values[1:])):
            raise ValueError(
                f'{name}={list(values)} must be non-decreasing: branch 1 (the largest model) '
                'sees the smallest image and the last branch (the smallest model) the full '
                'resolution; reorder the branches')
        if name == 'scales':
            if values[-1] != 1:
                raise ValueError(f'scales[-1] must be 1 (the last branch sees the full input), '
                                 f'got scales={list(values)}')
            return [float(v) for v in values]
        return [v / values[-1] for v in values]

    def _build_branch(self, i: int, cfg: object) -> PIIPBranchAdapter:
        if isinstance(cfg, nn.Module):
            backbone = cfg
        elif isinstance(cfg, dict):
            backbone = MODELS.build(cfg)
        else:
            raise TypeError(f'branches[{i}] must be a backbone config dict or nn.Module, got '
                            f'{type(cfg).__name__}')
        return build_piip_adapter(backbone)

    def _check_order(self) -> None:
        sizes = [sum(p.numel() for p in a.backbone.parameters()) for a in self.branches]
        if any(b > a for a, b in zip(sizes, sizes[1:])):
            raise ValueError(
                f'branch parameter counts {sizes} grow along the branches while scales '
                f'{[round(s, 3) for s in self.scales]} grow too: PIIP inverts the pyramid, so the '
                'largest model must come first (smallest image) and the smallest last (full '
                'resolution); reorder branches/resolutions or pass check_order=False')

    @staticmethod
    def _split(num_stages: int, k: int) -> List[Tuple[int, int]]:
        ends = [(j + 1) * num_stages // k for j in range(k)]
        return list(zip([0, *ends[:-1]], ends))

    def branch_input(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """The input branch ``i`` sees: ``x`` bilinearly resized by ``scales[i]``."""
        s = self.scales[i]
        if s == 1:
            return x
        size = (max(1, round(int(x.shape[-2]) * s)), max(1, round(int(x.shape[-1]) * s)))
        return F.interpolate(x, size=size, mode='bilinear', align_corners=False)

    def forward_branches(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Run all branches with interactions; returns each branch's final ``(B, C_i, h_i, w_i)``.

        Example:
            >>> [tuple(f.shape) for f in piip.forward_branches(torch.rand(1, 3, 64, 64))]
            [(1, 64, 2, 2), (1, 32, 4, 4)]
        """
        if x.dim() != 4:
            raise ValueError(f'PIIP expects (B, C, H, W) images, got shape {tuple(x.shape)}')
        states = [list(a.embed(self.branch_input(x, i))) for i, a in enumerate(self.branches)]
        prefix = [a.num_prefix_tokens for a in self.branches]
        for k, units in enumerate(self.interactions):
            for i, adapter in enumerate(self.branches):
                start, end = self.stage_ranges[i][k]
                states[i] = list(adapter.run_stages(start, end, *states[i]))
            for j in reversed(range(len(units))):  # (n-1 <-> n) first, (1 <-> 2) last
                (ta, hwa), (tb, hwb) = states[j], states[j + 1]
                pa, pb = prefix[j], prefix[j + 1]
                ga, gb = units[j](ta[:, pa:], hwa, tb[:, pb:], hwb)
                states[j][0] = torch.cat((ta[:, :pa], ga), dim=1) if pa else ga
                states[j + 1][0] = torch.cat((tb[:, :pb], gb), dim=1) if pb else gb
        return [a.finalize(t, hw) for a, (t, hw) in zip(self.branches, states)]

    def merge_branches(self, feats: Sequence[torch.Tensor],
                       image_hw: Tuple[int, int]) -> torch.Tensor:
        """Project, upsample to the stride-16 grid and sum (weighted) the branch maps."""
        size = (math.ceil(image_hw[0] / MERGE_STRIDE), math.ceil(image_hw[1] / MERGE_STRIDE))
        out = 0
        for i, (feat, proj) in enumerate(zip(feats, self.merge)):
            y = proj(feat)
            if tuple(y.shape[-2:]) != size:
                y = F.interpolate(y, size=size, mode='bilinear', align_corners=False)
            out = out + self.merge_weights[i] * y
        return out

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """``(B, 3, H, W)`` -> maps at strides 4, 8, 16, 32, each with ``out_channels``."""
        image_hw = (int(x.shape[-2]), int(x.shape[-1]))
        merged = self.merge_branches(self.forward_branches(x), image_hw)
        return self.pyramid(merged, image_hw=image_hw)
