"""Residual U-Net in STU-Net style: :class:`ResUNetEncoder` (backbone) and
:class:`~densekit.heads.unet_head.UNetDecoderHead` (decode head with deep supervision).

Scaling presets (``arch``); every stage is ``depth`` :class:`ConvNormResBlock` s, the first
with stride 2 (stage 0: stride 1), all kernels 3x3x3:

========  ======  =====================================  ======================================
arch      stages  widths                                 blocks per stage
========  ======  =====================================  ======================================
tiny      4       8-16-32-64                             1  (CPU preset, 3 downsamplings)
small     6       16-32-64-128-256-256                   1  (STU-Net S)
base      6       32-64-128-256-512-512                  1  (STU-Net B)
large     6       64-128-256-512-1024-1024               2  (STU-Net L)
huge      6       96-192-384-768-1536-1536               3  (STU-Net H)
========  ======  =====================================  ======================================

``num_stages`` keeps the first stages of a preset (e.g. ``arch='small', num_stages=4``);
``widths`` / ``depths`` override it. The decoder mirrors the encoder: at each level, nearest
upsampling + 1x1 conv (:class:`UpConcat`), concatenation with the skip and the level's
residual blocks, and a 1x1 segmentation head per level for deep supervision.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

from mmengine.model import BaseModule
from torch import Tensor, nn

from densekit.backbones.contract import ShapeContract
from densekit.blocks.residual import (
    DEFAULT_ACT,
    DEFAULT_NORM,
    ConvNormResBlock,
    per_stage,
    positive_int_list,
    run_blocks,
)
from densekit.layers import as_tuple, check_spatial_dims
from densekit.registry import MODELS

__all__ = ['ARCH_SETTINGS', 'ResUNetEncoder']

ARCH_SETTINGS = {
    'tiny': dict(widths=(8, 16, 32, 64), depths=(1, 1, 1, 1)),
    'small': dict(widths=(16, 32, 64, 128, 256, 256), depths=(1,) * 6),
    'base': dict(widths=(32, 64, 128, 256, 512, 512), depths=(1,) * 6),
    'large': dict(widths=(64, 128, 256, 512, 1024, 1024), depths=(2,) * 6),
    'huge': dict(widths=(96, 192, 384, 768, 1536, 1536), depths=(3,) * 6),
}


@MODELS.register_module()
class ResUNetEncoder(ShapeContract, BaseModule):
    """Residual U-Net encoder (STU-Net scaling): a pyramid of stage outputs, finest first.

    Args:
        in_channels: Image channels (modalities).
        arch: Preset name (see the module docstring).
        num_stages: Keep only the first ``num_stages`` stages of the preset (>= 2).
        widths: Channels per stage (overrides the preset).
        depths: Residual blocks per stage (overrides the preset).
        strides: Downsampling of stages 1.. (int or per-axis tuple each; default 2); e.g.
            ``[(1, 2, 2), 2, 2]`` for a thick-slice first level.
        kernel_sizes: Conv kernel of each stage (int or per-axis tuple each; default 3), e.g.
            ``[(1, 3, 3), (1, 3, 3), 3, 3]`` for thick slices (what ``densekit plan`` writes).
        spatial_dims: 3 (NCDHW) or 2 (NCHW).
        norm_cfg: Norm spec (default instance norm with affine).
        act_cfg: Activation spec (default LeakyReLU 0.01).
        with_cp: Activation checkpointing of every block while training (saves memory on
            large patches, costs one extra forward).
        init_cfg: mmengine init config.

    Raises:
        ValueError: unknown arch, inconsistent widths / depths / strides, or (in forward) an
            input whose size is not divisible by the total stride.

    Example:
        >>> enc = ResUNetEncoder(1, arch='tiny')
        >>> [tuple(f.shape) for f in enc(torch.rand(1, 1, 32, 32, 16))]
        [(1, 8, 32, 32, 16), (1, 16, 16, 16, 8), (1, 32, 8, 8, 4), (1, 64, 4, 4, 2)]
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, in_channels: int = 1, arch: str = 'small',
                 num_stages: Optional[int] = None, widths: Optional[Sequence[int]] = None,
                 depths: Optional[Sequence[int]] = None, strides: Any = 2,
                 spatial_dims: int = 3, norm_cfg: Any = DEFAULT_NORM, act_cfg: Any = DEFAULT_ACT,
                 with_cp: bool = False, init_cfg: Any = None, kernel_sizes: Any = 3) -> None:
        super().__init__(init_cfg=init_cfg)
        self.spatial_dims = check_spatial_dims(spatial_dims)
        if arch not in ARCH_SETTINGS:
            raise ValueError(f'arch must be one of {sorted(ARCH_SETTINGS)}, got {arch!r}')
        preset = ARCH_SETTINGS[arch]
        widths = positive_int_list(list(widths if widths is not None else preset['widths']),
                                'widths')
        depths = positive_int_list(list(depths if depths is not None else preset['depths']),
                                'depths')
        if num_stages is not None:
            if not isinstance(num_stages, int) or not 2 <= num_stages <= len(widths):
                raise ValueError(f'num_stages must be an int in [2, {len(widths)}] for '
                                 f'arch={arch!r}, got {num_stages!r}')
            widths, depths = widths[:num_stages], depths[:num_stages]
        if len(widths) != len(depths) or len(widths) < 2:
            raise ValueError(f'widths {widths} and depths {depths} must have the same length '
                             f'(>= 2 stages)')
        n = len(widths)
        stride_list = list(strides) if isinstance(strides, (list, tuple)) else [strides] * (n - 1)
        if len(stride_list) != n - 1:
            raise ValueError(f'strides needs {n - 1} entries (one per downsampling stage), got '
                             f'{strides!r}')
        self.strides = [as_tuple(1, spatial_dims, 'strides')] + [
            as_tuple(s, spatial_dims, 'strides item', minimum=1) for s in stride_list]
        self.kernel_sizes = per_stage(kernel_sizes, n, spatial_dims, 'kernel_sizes')
        self.widths, self.depths, self.with_cp = widths, depths, with_cp
        self.in_channels = in_channels
        self.stages = nn.ModuleList()
        prev = in_channels
        for width, depth, stride, kernel in zip(widths, depths, self.strides, self.kernel_sizes):
            self._kernel = kernel  # read by _make_stage (subclasses keep its signature)
            self.stages.append(self._make_stage(prev, width, depth, stride, norm_cfg, act_cfg))
            prev = width

    def _make_stage(self, in_channels: int, width: int, depth: int, stride: Tuple[int, ...],
                    norm_cfg: Any, act_cfg: Any) -> nn.Sequential:
        """One stage: ``depth`` residual blocks, the first with ``stride`` (subclasses build
        other stages from the same arguments)."""
        kernel = getattr(self, '_kernel', 3)
        blocks = [ConvNormResBlock(self.spatial_dims, in_channels, width, stride=stride,
                           kernel_size=kernel, norm_cfg=norm_cfg, act_cfg=act_cfg)]
        blocks += [ConvNormResBlock(self.spatial_dims, width, width, kernel_size=kernel,
                            norm_cfg=norm_cfg, act_cfg=act_cfg) for _ in range(depth - 1)]
        return nn.Sequential(*blocks)

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Channels of every returned stage (the shape contract)."""
        return tuple(self.widths)

    @property
    def out_strides(self) -> Tuple[Tuple[int, ...], ...]:
        """Absolute per-axis stride of every returned stage (the shape contract); the
        ``strides`` argument and attribute are the per-stage relative ones."""
        out, total = [], [1] * self.spatial_dims
        for stride in self.strides:
            total = [t * s for t, s in zip(total, stride)]
            out.append(tuple(total))
        return tuple(out)

    @property
    def total_stride(self) -> Tuple[int, ...]:
        """Per-axis product of the strides (input sizes must be multiples of it)."""
        return self.out_strides[-1]

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """``(N, C_in, *spatial)`` -> one map per stage, ``(N, widths[i], *spatial / 2^i)``."""
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(f'ResUNetEncoder expects (N, {self.in_channels}, '
                             f'{self.spatial_dims} spatial dims), got {tuple(x.shape)}')
        total = self.total_stride
        if any(s % t for s, t in zip(x.shape[2:], total)):
            raise ValueError(f'input spatial size {tuple(x.shape[2:])} must be a multiple of '
                             f'the total stride {total}; pad it or choose another patch size')
        feats = []
        for stage in self.stages:
            x = run_blocks(stage, x, self.with_cp and self.training)
            feats.append(x)
        return tuple(feats)
