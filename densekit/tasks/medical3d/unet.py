"""Residual U-Net in STU-Net style: :class:`ResUNetEncoder` (backbone) and
:class:`UNetDecoderHead` (decode head with deep supervision).

Scaling presets (``arch``); every stage is ``depth`` :class:`~.blocks.ResBlock` s, the first
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
upsampling + 1x1 conv (:class:`~.blocks.UpConcat`), concatenation with the skip and the level's
residual blocks, and a 1x1 segmentation head per level for deep supervision.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from densekit.backbones.contract import ShapeContract
from densekit.layers import LayerFactory, as_tuple, check_spatial_dims
from densekit.registry import MODELS
from densekit.tasks.medical3d.blocks import DEFAULT_ACT, DEFAULT_NORM, ResBlock, UpConcat

__all__ = ['ARCH_SETTINGS', 'ResUNetEncoder', 'UNetDecoderHead']

ARCH_SETTINGS = {
    'tiny': dict(widths=(8, 16, 32, 64), depths=(1, 1, 1, 1)),
    'small': dict(widths=(16, 32, 64, 128, 256, 256), depths=(1,) * 6),
    'base': dict(widths=(32, 64, 128, 256, 512, 512), depths=(1,) * 6),
    'large': dict(widths=(64, 128, 256, 512, 1024, 1024), depths=(2,) * 6),
    'huge': dict(widths=(96, 192, 384, 768, 1536, 1536), depths=(3,) * 6),
}


def _positive_ints(values: Any, argname: str) -> Tuple[int, ...]:
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f'{argname} must be a non-empty list of positive ints, got {values!r}')
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f'{argname} must hold positive ints, got {tuple(values)!r}')
    return tuple(values)


def _per_stage(values: Any, count: int, spatial_dims: int, argname: str
               ) -> List[Tuple[int, ...]]:
    """One per-axis tuple per stage: an int or a sequence of ints applies to every stage; a
    sequence holding sequences gives one entry (int or per-axis) per stage."""
    if isinstance(values, (list, tuple)) and any(isinstance(v, (list, tuple)) for v in values):
        items = list(values)
        if len(items) != count:
            raise ValueError(f'{argname} needs {count} entries (one per stage), got {values!r}')
        return [as_tuple(v, spatial_dims, f'{argname} item', minimum=1) for v in items]
    return [as_tuple(values, spatial_dims, argname, minimum=1)] * count


def _run_blocks(blocks: nn.Sequential, x: Tensor, with_cp: bool) -> Tensor:
    for block in blocks:
        # blocks that store no activations themselves (reversible ones) gain nothing from it
        if with_cp and x.requires_grad and not getattr(block, 'stores_no_activations', False):
            x = checkpoint(block, x, use_reentrant=False)
        else:
            x = block(x)
    return x


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
        widths = _positive_ints(list(widths if widths is not None else preset['widths']),
                                'widths')
        depths = _positive_ints(list(depths if depths is not None else preset['depths']),
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
        self.kernel_sizes = _per_stage(kernel_sizes, n, spatial_dims, 'kernel_sizes')
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
        blocks = [ResBlock(self.spatial_dims, in_channels, width, stride=stride,
                           kernel_size=kernel, norm_cfg=norm_cfg, act_cfg=act_cfg)]
        blocks += [ResBlock(self.spatial_dims, width, width, kernel_size=kernel,
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
            x = _run_blocks(stage, x, self.with_cp and self.training)
            feats.append(x)
        return tuple(feats)


@MODELS.register_module()
class UNetDecoderHead(BaseModule):
    """U-Net decoder with a 1x1 segmentation head per level (deep supervision).

    Args:
        in_channels: Channels of each input level, finest first (the encoder's widths, or the
            neck's outputs, e.g. ``[32] * 4`` after an FPN).
        num_classes: Output classes (including background).
        depths: Residual blocks per decoder level (finest first; default 1 each).
        spatial_dims: 3 or 2.
        norm_cfg: Norm spec.
        act_cfg: Activation spec.
        deep_supervision: Return the logits of every decoder level while training.
        with_cp: Activation checkpointing of every block while training.
        init_cfg: mmengine init config.
        kernel_sizes: Conv kernel of each decoder level, finest first (int or per-axis tuple
            each; default 3); the encoder's kernels of the same levels, as ``densekit plan``
            writes them.

    Example:
        >>> head = UNetDecoderHead([8, 16, 32], num_classes=3)
        >>> feats = [torch.rand(1, c, 16 // 2**i, 16 // 2**i, 8 // 2**i)
        ...          for i, c in enumerate([8, 16, 32])]
        >>> [tuple(o.shape) for o in head(feats, all_scales=True)]
        [(1, 3, 16, 16, 8), (1, 3, 8, 8, 4)]
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, in_channels: Sequence[int], num_classes: int,
                 depths: Optional[Sequence[int]] = None, spatial_dims: int = 3,
                 norm_cfg: Any = DEFAULT_NORM, act_cfg: Any = DEFAULT_ACT,
                 deep_supervision: bool = True, with_cp: bool = False,
                 init_cfg: Any = None, kernel_sizes: Any = 3) -> None:
        super().__init__(init_cfg=init_cfg)
        self.spatial_dims = check_spatial_dims(spatial_dims)
        in_channels = _positive_ints(list(in_channels), 'in_channels')
        if len(in_channels) < 2:
            raise ValueError(f'in_channels needs >= 2 levels, got {in_channels!r}')
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f'num_classes must be an int >= 2 (background included), got '
                             f'{num_classes!r}')
        levels = len(in_channels) - 1
        depths = _positive_ints(list(depths) if depths is not None else [1] * levels, 'depths')
        if len(depths) != levels:
            raise ValueError(f'depths needs {levels} entries (one per decoder level), got '
                             f'{depths!r}')
        self.in_channels, self.num_classes = in_channels, num_classes
        self.deep_supervision, self.with_cp = deep_supervision, with_cp
        kernels = _per_stage(kernel_sizes, levels, spatial_dims, 'kernel_sizes')
        factory = LayerFactory(spatial_dims)
        self.ups, self.blocks, self.seg_heads = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for level in range(levels):  # finest first
            # the coarse input is the level below's decoder output (or the bottom feature)
            skip, coarse = in_channels[level], in_channels[level + 1]
            self.ups.append(UpConcat(spatial_dims, coarse, skip))
            k = kernels[level]
            blocks = [ResBlock(spatial_dims, 2 * skip, skip, kernel_size=k, norm_cfg=norm_cfg,
                               act_cfg=act_cfg)]
            blocks += [ResBlock(spatial_dims, skip, skip, kernel_size=k, norm_cfg=norm_cfg,
                                act_cfg=act_cfg) for _ in range(depths[level] - 1)]
            self.blocks.append(nn.Sequential(*blocks))
            self.seg_heads.append(factory.conv(skip, num_classes, 1))

    def forward(self, feats: Sequence[Tensor], all_scales: Optional[bool] = None
                ) -> Union[Tensor, List[Tensor]]:
        """Decode a pyramid (finest first).

        Args:
            feats: ``len(in_channels)`` maps ``(N, in_channels[i], *spatial_i)``.
            all_scales: Return the logits of every level (finest first) instead of the finest
                only; default: while training with deep supervision.

        Returns:
            ``(N, num_classes, *spatial_0)`` logits, or a list of them per level.
        """
        if not isinstance(feats, (list, tuple)) or len(feats) != len(self.in_channels):
            got = len(feats) if isinstance(feats, (list, tuple)) else type(feats).__name__
            raise ValueError(f'UNetDecoderHead expects {len(self.in_channels)} feature maps, '
                             f'got {got}')
        if all_scales is None:
            all_scales = self.training and self.deep_supervision
        x = feats[-1]
        outs: List[Tensor] = []
        cp = self.with_cp and self.training
        for level in range(len(self.ups) - 1, -1, -1):
            x = self.ups[level](x, feats[level])
            x = _run_blocks(self.blocks[level], x, cp)
            if all_scales or level == 0:
                outs.append(self.seg_heads[level](x))
        outs.reverse()
        return outs if all_scales else outs[0]
