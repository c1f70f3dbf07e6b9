"""D-Former encoder (Wu et al., "D-Former: a U-shaped Dilated Transformer for 3D medical image
segmentation") as a pyramid backbone for :class:`~densekit.heads.unet_head.UNetDecoderHead`.

Layout (channels-last tokens ``(N, *spatial, C)`` inside, NCDHW outside):

* patch embedding: a conv with kernel = stride = ``patch_size`` and a LayerNorm;
* stages of D-Former blocks. Each stage starts with the dynamic position encoding (a depthwise
  3x3x3 conv added to the tokens), then alternates *local scope* blocks (self-attention inside
  non-overlapping windows of ``window_size`` tokens) and *global scope* blocks (self-attention
  inside dilated groups: the same number of tokens per group, taken every ``n`` tokens where
  ``n`` is the number of windows along the axis, so every group spans the whole volume). Each
  block is pre-norm: ``x + attn(LN x)``, then ``x + MLP(LN x)`` (GELU, ratio 4);
* patch merging between stages (2x2x2 neighbours concatenated, LayerNorm, linear to 2C).

Where a token grid is smaller than the window along an axis, that axis is not split. Grids that
are not a multiple of the window are zero-padded and the padded tokens are masked out as keys
(every grid goes through the pad and the mask, so the encoder exports with dynamic sizes),
so any input size works (the patch embedding and the mergings pad odd sizes as well; level
``i`` has ``ceil(size / stride_i)`` voxels).

The decoder needs a full-resolution level and levels at successive 2x strides, which a
transformer at stride ``patch_size`` lacks: a small convolutional stem (densekit's addition,
STU-Net :class:`ConvNormResBlock` s) supplies the levels at strides 1, 2, ... below the patch
size. ``out_channels`` lists the channels of every level (finest first) for the decoder.

Presets (``arch``):

======  =====  =========  ===========  =========  ========  =====  ==============
arch    embed  depths     heads        patch      window    stem   encoder params
======  =====  =========  ===========  =========  ========  =====  ==============
tiny    16     2-2-2      1-2-4        2x2x2      4x4x4     8      0.16M (CPU)
base    96     2-2-6-2    3-6-12-24    2x4x4      2x8x8     24-48  29.2M
======  =====  =========  ===========  =========  ========  =====  ==============

``base`` is the setting of the authors' public code (embedding 96, depths 2-2-6-2, heads
3-6-12-24, patch 2x4x4, groups of 2x8x8 tokens, MLP ratio 4, position encoding at the start of
each stage); there too the global groups' dilation is ``grid // window`` per axis.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from densekit.backbones.contract import ShapeContract
from densekit.blocks.residual import DEFAULT_ACT, DEFAULT_NORM, ConvNormResBlock
from densekit.errors import positive_int, positive_ints
from densekit.layers import LayerFactory, as_tuple, check_spatial_dims, size_tensor
from densekit.registry import MODELS

__all__ = ['DFORMER_ARCHS', 'DFormerEncoder', 'DFormerBlock', 'partition_groups',
           'merge_groups']

DFORMER_ARCHS: Dict[str, Dict[str, Any]] = {
    'tiny': dict(embed_dim=16, depths=(2, 2, 2), num_heads=(1, 2, 4), patch_size=2,
                 window_size=4),
    'base': dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                 patch_size=(2, 4, 4), window_size=(2, 8, 8)),
}


# -- token grouping --------------------------------------------------------------------------
def _group_permutation(spatial_dims: int, dilated: bool) -> List[int]:
    """Axis order taking ``(B, a0, b0, a1, b1, ..., C)`` to ``(B, groups..., members..., C)``.

    Local: position = group * window + member, so the pairs are (group, member). Dilated:
    position = member * num_groups + group, so the pairs are (member, group).
    """
    group_first = [1 + 2 * i for i in range(spatial_dims)]
    member_first = [2 + 2 * i for i in range(spatial_dims)]
    groups, members = (member_first, group_first) if dilated else (group_first, member_first)
    return [0, *groups, *members, 2 * spatial_dims + 1]


def partition_groups(x: Tensor, window: Sequence[int], dilated: bool) -> Tensor:
    """Split channels-last tokens into attention groups of ``prod(window)`` tokens.

    Args:
        x: ``(B, *grid, C)`` with every grid size a multiple of its window size.
        window: Tokens per group along each axis.
        dilated: False: local windows (contiguous blocks). True: global groups; with
            ``n = grid / window`` groups along an axis, group ``j`` holds the tokens
            ``j, j + n, j + 2n, ...`` (dilation ``n``), spanning the whole axis.

    Returns:
        ``(B * num_groups, prod(window), C)``, groups ordered batch-major.

    Example:
        >>> partition_groups(torch.zeros(2, 8, 8, 4, 5), (4, 4, 2), dilated=True).shape
        torch.Size([16, 32, 5])
    """
    batch, *grid, channels = x.shape
    counts = [g // w for g, w in zip(grid, window)]
    if len(grid) != len(window) or any(c * w != g for c, w, g in zip(counts, window, grid)):
        raise ValueError(f'token grid {tuple(grid)} must be a multiple of the window '
                         f'{tuple(window)}')
    pairs = [v for c, w in zip(counts, window) for v in ((w, c) if dilated else (c, w))]
    x = x.reshape(batch, *pairs, channels).permute(_group_permutation(len(grid), dilated))
    return x.reshape(batch * math.prod(counts), math.prod(window), channels)


def merge_groups(groups: Tensor, window: Sequence[int], grid: Sequence[int],
                 dilated: bool) -> Tensor:
    """Inverse of :func:`partition_groups`: ``(B * num_groups, prod(window), C)`` ->
    ``(B, *grid, C)``."""
    counts = [g // w for g, w in zip(grid, window)]
    channels = groups.shape[-1]
    batch = groups.shape[0] // math.prod(counts)
    perm = _group_permutation(len(grid), dilated)
    inverse = sorted(range(len(perm)), key=perm.__getitem__)
    x = groups.reshape(batch, *counts, *window, channels).permute(inverse)
    return x.reshape(batch, *grid, channels)


# -- blocks ------------------------------------------------------------------------------------
class GroupAttention(nn.Module):
    """Multi-head self-attention inside token groups, with optional key masks.

    Args:
        dim: Token channels.
        num_heads: Heads (must divide ``dim``).
        qkv_bias: Bias of the q/k/v projection.
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, key_mask: Optional[Tensor] = None) -> Tensor:
        """``x`` ``(G, T, C)``; ``key_mask`` ``(G, T)`` bool (True = real token) or None."""
        groups, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(groups, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(groups, tokens, channels))


class DFormerBlock(nn.Module):
    """One D-Former block: pre-norm group attention (local or global scope) and an MLP.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        window_size: Tokens per group along each axis.
        dilated: Global scope (dilated groups) instead of local windows.
        mlp_ratio: MLP hidden width / ``dim``.
        qkv_bias: Bias of the q/k/v projection.

    Example:
        >>> block = DFormerBlock(16, 2, (4, 4, 4), dilated=True)
        >>> block(torch.rand(1, 9, 10, 5, 16)).shape  # (N, D, H, W, C) tokens, any size
        torch.Size([1, 9, 10, 5, 16])
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, dim: int, num_heads: int, window_size: Sequence[int], dilated: bool,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True) -> None:
        super().__init__()
        self.window_size, self.dilated = tuple(window_size), dilated
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GroupAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        """``(N, *grid, C)`` -> ``(N, *grid, C)``."""
        d = x.dim() - 2
        grid = [size_tensor(x, 1 + i) for i in range(d)]
        window = [torch.clamp(g, max=w) for w, g in zip(self.window_size, grid)]
        padded = [-torch.div(-g, w, rounding_mode='floor') * w for g, w in zip(grid, window)]
        # always padded to the window multiple (a zero pad when it divides) and the padded keys
        # masked: no Python branch on the size, so the graph exports with dynamic sizes
        pads = [0, 0]  # channels, then the spatial axes from the last one
        for g, p in zip(reversed(grid), reversed(padded)):
            pads += [0, p - g]
        h = F.pad(self.norm1(x), pads)
        valid = torch.ones([1] * (d + 2), dtype=torch.bool, device=x.device)
        for axis, (g, p) in enumerate(zip(grid, padded)):
            inside = torch.arange(p, device=x.device) < g
            valid = valid & inside.reshape([1] * (1 + axis) + [-1] + [1] * (d - axis))
        valid = valid.expand(1, *padded, 1)
        key_mask = partition_groups(valid, window, self.dilated)[..., 0]
        key_mask = key_mask.repeat(x.shape[0], 1)
        groups = self.attn(partition_groups(h, window, self.dilated), key_mask)
        h = merge_groups(groups, window, padded, self.dilated)
        h = h[(slice(None), *[slice(0, g) for g in grid])]
        x = x + h
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """Concatenate each 2x2(x2) token neighbourhood, LayerNorm, linear to ``out_dim``
    (odd grids are zero-padded)."""
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, spatial_dims: int, dim: int, out_dim: int) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.norm = nn.LayerNorm(2 ** spatial_dims * dim)
        self.reduction = nn.Linear(2 ** spatial_dims * dim, out_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, *grid, C)`` -> ``(N, *ceil(grid / 2), out_dim)``."""
        grid = [size_tensor(x, 1 + i) for i in range(x.dim() - 2)]
        pads = [0, 0]
        for g in reversed(grid):
            pads += [0, g % 2]
        x = F.pad(x, pads)  # always (a zero pad on even grids): no branch on the size
        half = [torch.div(g + 1, 2, rounding_mode='floor') for g in grid]
        d = self.spatial_dims
        x = x.reshape(x.shape[0], *[v for h in half for v in (h, 2)], x.shape[-1])
        x = x.permute(0, *[1 + 2 * i for i in range(d)], *[2 + 2 * i for i in range(d)],
                      2 * d + 1)
        x = x.reshape(x.shape[0], *half, -1)
        return self.reduction(self.norm(x))


class DFormerStage(nn.Module):
    """Optional patch merging, dynamic position encoding, alternating local/global blocks."""
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, spatial_dims: int, in_dim: int, dim: int, depth: int, num_heads: int,
                 window_size: Sequence[int], mlp_ratio: float, qkv_bias: bool,
                 merge: bool) -> None:
        super().__init__()
        self.merge = PatchMerging(spatial_dims, in_dim, dim) if merge else None
        # dynamic position encoding: depthwise conv on the token grid, added to the tokens
        self.pos_conv = LayerFactory(spatial_dims).conv(dim, dim, 3, padding=1, groups=dim)
        self.blocks = nn.ModuleList(
            DFormerBlock(dim, num_heads, window_size, dilated=i % 2 == 1,
                         mlp_ratio=mlp_ratio, qkv_bias=qkv_bias) for i in range(depth))

    def forward(self, x: Tensor, with_cp: bool = False) -> Tensor:
        """``(N, *grid, C_in)`` tokens -> ``(N, *grid', C)``."""
        if self.merge is not None:
            x = self.merge(x)
        d = x.dim() - 2
        channels_first = x.permute(0, d + 1, *range(1, d + 1))
        x = x + self.pos_conv(channels_first).permute(0, *range(2, d + 2), 1)
        for block in self.blocks:
            if with_cp and x.requires_grad:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


def _is_power_of_two(v: int) -> bool:
    return v >= 1 and v & (v - 1) == 0


@MODELS.register_module()
class DFormerEncoder(ShapeContract, BaseModule):
    """D-Former encoder returning a U-Net pyramid, finest (full resolution) first.

    Args:
        in_channels: Image channels (modalities).
        arch: ``'tiny'`` or ``'base'`` (see the module docstring).
        embed_dim: Channels of the first transformer stage (doubled at every merging).
        depths: Blocks per stage (local and global scope alternate, local first).
        num_heads: Attention heads per stage (each must divide the stage's channels).
        patch_size: Patch embedding stride, int or per axis; powers of 2.
        window_size: Tokens per attention group along each axis (int or per axis).
        stem_channels: Channels of the convolutional levels below the patch size (one per
            power of 2 below ``max(patch_size)``); default ``embed_dim / 2^k``.
        mlp_ratio: MLP hidden width / channels.
        qkv_bias: Bias of the q/k/v projections.
        spatial_dims: 3 (NCDHW) or 2 (NCHW).
        norm_cfg: Norm of the convolutional stem (default instance norm).
        act_cfg: Activation of the convolutional stem.
        with_cp: Activation checkpointing of every transformer block while training.
        init_cfg: mmengine init config.

    Raises:
        ValueError: unknown arch, mismatched depths / heads, heads not dividing the channels,
            bad patch or window sizes, wrong stem channel count, or (in forward) an input of the
            wrong rank or channels.

    Example:
        >>> enc = DFormerEncoder(2, arch='tiny')
        >>> [tuple(f.shape) for f in enc(torch.rand(1, 2, 17, 20, 9))]
        [(1, 8, 17, 20, 9), (1, 16, 9, 10, 5), (1, 32, 5, 5, 3), (1, 64, 3, 3, 2)]
        >>> enc.out_channels
        [8, 16, 32, 64]
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, in_channels: int = 1, arch: str = 'tiny', *,
                 embed_dim: Optional[int] = None, depths: Optional[Sequence[int]] = None,
                 num_heads: Optional[Sequence[int]] = None, patch_size: Any = None,
                 window_size: Any = None, stem_channels: Optional[Sequence[int]] = None,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, spatial_dims: int = 3,
                 norm_cfg: Any = DEFAULT_NORM, act_cfg: Any = DEFAULT_ACT,
                 with_cp: bool = False, init_cfg: Any = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.spatial_dims = d = check_spatial_dims(spatial_dims)
        if arch not in DFORMER_ARCHS:
            raise ValueError(f'arch must be one of {sorted(DFORMER_ARCHS)}, got {arch!r}')
        preset = DFORMER_ARCHS[arch]
        embed_dim = preset['embed_dim'] if embed_dim is None else embed_dim
        depths = list(preset['depths'] if depths is None else depths)
        num_heads = list(preset['num_heads'] if num_heads is None else num_heads)

        def preset_size(key: str) -> Any:  # a 3D preset's per-axis size used in 2D: (H, W)
            value = preset[key]
            return value[-d:] if isinstance(value, tuple) else value

        patch = preset_size('patch_size') if patch_size is None else patch_size
        window = preset_size('window_size') if window_size is None else window_size
        for name, value in (('in_channels', in_channels), ('embed_dim', embed_dim)):
            positive_int(value, name)
        for name, values in (('depths', depths), ('num_heads', num_heads)):
            positive_ints(values, name)
        if len(depths) != len(num_heads):
            raise ValueError(f'depths {depths} and num_heads {num_heads} need one entry per '
                             f'stage each')
        dims = [embed_dim * 2 ** i for i in range(len(depths))]
        for i, (dim, heads) in enumerate(zip(dims, num_heads)):
            if dim % heads:
                raise ValueError(f'num_heads[{i}]={heads} must divide the {dim} channels of '
                                 f'stage {i}')
        self.patch_size = as_tuple(patch, d, 'patch_size', minimum=1)
        if not all(_is_power_of_two(p) for p in self.patch_size):
            raise ValueError(f'patch_size must hold powers of 2 (the pyramid steps by 2), got '
                             f'{self.patch_size}')
        self.window_size = as_tuple(window, d, 'window_size', minimum=1)
        if not isinstance(mlp_ratio, (int, float)) or mlp_ratio <= 0:
            raise ValueError(f'mlp_ratio must be a positive number, got {mlp_ratio!r}')
        num_stem = int(math.log2(max(self.patch_size)))
        if stem_channels is None:
            stem_channels = [max(2, embed_dim // 2 ** (num_stem - k)) for k in range(num_stem)]
        stem_channels = list(stem_channels)
        if len(stem_channels) != num_stem or any(
                not isinstance(c, int) or isinstance(c, bool) or c < 1 for c in stem_channels):
            raise ValueError(f'stem_channels needs {num_stem} positive ints (one level per '
                             f'power of 2 below patch_size={self.patch_size}), got '
                             f'{stem_channels!r}')
        self.in_channels, self.with_cp = in_channels, with_cp
        self.dims, self.depths, self.num_heads = dims, depths, num_heads

        # convolutional levels at strides 1, 2, ... below the patch size
        self.stem = nn.ModuleList()
        strides: List[Tuple[int, ...]] = []
        prev, current = in_channels, (1,) * d
        for k, channels in enumerate(stem_channels):
            step = (1,) * d if k == 0 else tuple(2 if c < p else 1
                                                 for c, p in zip(current, self.patch_size))
            current = tuple(c * s for c, s in zip(current, step))
            self.stem.append(ConvNormResBlock(d, prev, channels, stride=step, norm_cfg=norm_cfg,
                                      act_cfg=act_cfg))
            strides.append(current)
            prev = channels
        factory = LayerFactory(d)
        self.patch_embed = factory.conv(in_channels, embed_dim, self.patch_size,
                                        stride=self.patch_size)
        self.embed_norm = nn.LayerNorm(embed_dim)
        self.stages = nn.ModuleList()
        self.out_norms = nn.ModuleList()
        for i, (dim, depth, heads) in enumerate(zip(dims, depths, num_heads)):
            self.stages.append(DFormerStage(d, dims[i - 1] if i else dim, dim, depth, heads,
                                            self.window_size, mlp_ratio, qkv_bias,
                                            merge=i > 0))
            self.out_norms.append(nn.LayerNorm(dim))
            strides.append(tuple(p * 2 ** i for p in self.patch_size))
        self.out_channels: List[int] = stem_channels + dims
        self.out_strides: List[Tuple[int, ...]] = strides
        self.apply(_init_transformer)

    @property
    def total_stride(self) -> Tuple[int, ...]:
        """Input sizes must be multiples of this: none needed (padded internally)."""
        return (1,) * self.spatial_dims

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """``(N, C_in, *spatial)`` -> one map per level, ``(N, out_channels[i],
        *ceil(spatial / out_strides[i]))``, finest first."""
        d = self.spatial_dims
        if x.dim() != d + 2 or x.shape[1] != self.in_channels:
            raise ValueError(f'DFormerEncoder expects (N, {self.in_channels}, {d} spatial '
                             f'dims), got {tuple(x.shape)}')
        feats = []
        h = x
        for block in self.stem:
            h = block(h)
            feats.append(h)
        pads: List[Tensor] = []
        for axis, p in zip(reversed(range(2, d + 2)), reversed(self.patch_size)):
            pads += [0, -size_tensor(x, axis) % p]
        tokens = self.patch_embed(F.pad(x, pads))  # always: no branch on the size
        tokens = self.embed_norm(tokens.permute(0, *range(2, d + 2), 1))
        cp = self.with_cp and self.training
        for stage, norm in zip(self.stages, self.out_norms):
            tokens = stage(tokens, cp)
            feats.append(norm(tokens).permute(0, d + 1, *range(1, d + 1)).contiguous())
        return tuple(feats)


def _init_transformer(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
