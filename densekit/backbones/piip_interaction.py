"""PIIP cross-branch interaction: deformable cross-attention + ConvFFN between two branches.

One :class:`PIIPInjector` moves information *into* a receiving branch: its tokens are the
queries, the other branch's tokens (linearly projected to the receiver's width) are keys and
values, both are LayerNorm-ed, and mmcv's ``MultiScaleDeformableAttention`` (one level, a few
sampling points per head, value width ``value_ratio x d``) samples the other branch's grid around
each query's pixel centre. The result is added with a per-channel ``gamma_attn``; a ConvFFN
(Linear to ``ffn_ratio x d``, 3x3 depthwise conv on the token grid, GELU, Linear back) is added
with a per-channel ``gamma_ffn``. Both gammas start at 0, so an untrained unit is the identity.

:class:`PIIPInteraction` (registered as ``densekit.PIIPInteraction``) is the bidirectional unit
of the paper: two injectors, both computed from the features as they were before the unit.

Example:
    >>> unit = PIIPInteraction(dims=(64, 32), num_heads=4)
    >>> x1, x2 = torch.rand(2, 16, 64), torch.rand(2, 64, 32)   # 4x4 and 8x8 grids
    >>> y1, y2 = unit(x1, (4, 4), x2, (8, 8))
    >>> y1.shape, y2.shape
    (torch.Size([2, 16, 64]), torch.Size([2, 64, 32]))
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence, Tuple

import torch
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import nn

from densekit.errors import positive_int
from densekit.layers import LayerFactory
from densekit.registry import MODELS

HW = Tuple[int, int]


def check_interaction_width(dim: int, num_heads: int, value_ratio: float,
                            where: str = '') -> None:
    """Raise ValueError unless ``dim`` and its value width split evenly into ``num_heads``.

    Args:
        dim: Receiving branch width (the attention's ``embed_dims``).
        num_heads: Number of deformable-attention heads.
        value_ratio: Value width as a fraction of ``dim``.
        where: Context appended to the message (e.g. which branch / interaction point).
    """
    positive_int(num_heads, 'num_heads')
    if not 0 < value_ratio <= 1:
        raise ValueError(f'value_ratio must be in (0, 1], got {value_ratio!r}')
    value_dim = int(dim * value_ratio)
    if dim % num_heads or value_dim % num_heads or value_dim == 0:
        raise ValueError(
            f'num_heads={num_heads} must divide the branch width {dim} and its value width '
            f'{value_dim} (= {value_ratio} x {dim}){where}; pick heads that divide both')


def reference_points(hw: HW, batch: int, device: torch.device,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised pixel-centre coordinates of an ``h x w`` grid, ``(B, h*w, 1, 2)`` as (x, y).

    Example:
        >>> reference_points((2, 2), 1, torch.device('cpu'))[0, :, 0]
        tensor([[0.2500, 0.2500], [0.7500, 0.2500], [0.2500, 0.7500], [0.7500, 0.7500]])
    """
    h, w = hw
    ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
    ref_y, ref_x = torch.meshgrid(ys, xs, indexing='ij')
    ref = torch.stack((ref_x.reshape(-1), ref_y.reshape(-1)), dim=-1)
    return ref[None, :, None, :].expand(batch, -1, -1, -1)


class ConvFFN(nn.Module):
    """Linear -> 3x3 depthwise conv on the token grid -> GELU -> Linear.

    Args:
        dim: Token width.
        hidden: Hidden width.

    Example:
        >>> ConvFFN(64, 16)(torch.rand(2, 12, 64), (3, 4)).shape
        torch.Size([2, 12, 64])
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = LayerFactory(2).conv(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, hw: HW) -> torch.Tensor:
        """``(B, h*w, dim)`` -> ``(B, h*w, dim)``."""
        x = self.fc1(x)
        b, n, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(b, c, hw[0], hw[1]))
        x = self.act(x.flatten(2).transpose(1, 2))
        return self.fc2(x)


class PIIPInjector(BaseModule):
    """One direction of a PIIP interaction: inject ``feat`` (other branch) into ``query``.

    Args:
        dim: Width of the receiving branch (queries).
        feat_dim: Width of the sending branch; projected to ``dim`` by a Linear.
        num_heads: Deformable attention heads (must divide ``dim`` and the value width).
        num_points: Sampling points per head.
        value_ratio: Value width as a fraction of ``dim`` (0.5 in the paper).
        ffn_ratio: ConvFFN hidden width as a fraction of ``dim``; ``0`` disables the ConvFFN.
        drop_path: DropPath rate on the ConvFFN branch.
        norm_eps: LayerNorm epsilon.

    Example:
        >>> inj = PIIPInjector(32, 64, num_heads=4)
        >>> inj(torch.rand(2, 64, 32), (8, 8), torch.rand(2, 16, 64), (4, 4)).shape
        torch.Size([2, 64, 32])
    """

    def __init__(self, dim: int, feat_dim: int, num_heads: int = 16, num_points: int = 4,
                 value_ratio: float = 0.5, ffn_ratio: float = 0.25, drop_path: float = 0.0,
                 norm_eps: float = 1e-6, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value in (('dim', dim), ('feat_dim', feat_dim), ('num_points', num_points)):
            positive_int(value, name)
        check_interaction_width(dim, num_heads, value_ratio)
        if ffn_ratio < 0:
            raise ValueError(f'ffn_ratio must be >= 0, got {ffn_ratio!r}')
        from mmcv.ops import MultiScaleDeformableAttention

        self.dim = dim
        self.proj = nn.Linear(feat_dim, dim)
        self.query_norm = nn.LayerNorm(dim, eps=norm_eps)
        self.feat_norm = nn.LayerNorm(dim, eps=norm_eps)
        with warnings.catch_warnings():  # head widths that are not powers of 2 only warn
            warnings.simplefilter('ignore')
            self.attn = MultiScaleDeformableAttention(
                embed_dims=dim, num_heads=num_heads, num_levels=1, num_points=num_points,
                dropout=0.0, batch_first=True, value_proj_ratio=value_ratio)
        self.gamma_attn = nn.Parameter(torch.zeros(dim))
        self.with_ffn = ffn_ratio > 0
        if self.with_ffn:
            self.ffn_norm = nn.LayerNorm(dim, eps=norm_eps)
            self.ffn = ConvFFN(dim, max(1, int(dim * ffn_ratio)))
            self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
            self.gamma_ffn = nn.Parameter(torch.zeros(dim))
        self._init_own_weights()

    def _init_own_weights(self) -> None:
        """Truncated-normal Linears, Deformable-DETR init for the attention; gammas stay 0."""
        for module in [self.proj, *(self.ffn.modules() if self.with_ffn else [])]:
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        self.attn.init_weights()

    def init_weights(self) -> None:
        """Re-apply this module's own initialisation (mmengine's ``init_weights`` hook)."""
        if self.init_cfg is not None:
            super().init_weights()
        else:
            self._init_own_weights()

    def forward(self, query: torch.Tensor, query_hw: HW, feat: torch.Tensor,
                feat_hw: HW) -> torch.Tensor:
        """Update ``query`` ``(B, Hq*Wq, dim)`` with ``feat`` ``(B, Hf*Wf, feat_dim)``."""
        b, n_feat, _ = feat.shape
        if n_feat != feat_hw[0] * feat_hw[1] or query.shape[1] != query_hw[0] * query_hw[1]:
            raise ValueError(f'token counts {query.shape[1]}/{n_feat} do not match grids '
                             f'{tuple(query_hw)}/{tuple(feat_hw)}')
        value = self.feat_norm(self.proj(feat))
        shapes = torch.as_tensor([feat_hw], dtype=torch.long, device=query.device)
        start = shapes.new_zeros((1,))
        ref = reference_points(query_hw, b, query.device, query.dtype)
        attn = self.attn(self.query_norm(query), value=value,
                         identity=query.new_zeros(()), reference_points=ref,
                         spatial_shapes=shapes, level_start_index=start)
        query = query + self.gamma_attn * attn
        if self.with_ffn:
            query = query + self.gamma_ffn * self.drop_path(
                self.ffn(self.ffn_norm(query), query_hw))
        return query


@MODELS.register_module()
class PIIPInteraction(BaseModule):
    """Bidirectional PIIP interaction unit between two adjacent branches.

    Branch ``a`` is the larger model on the coarser grid, branch ``b`` the smaller model on the
    finer grid (any grids work: reference points are normalised pixel centres). Both directions
    read the inputs as they were before the unit.

    Args:
        dims: ``(dim_a, dim_b)`` token widths of the two branches.
        num_heads: Deformable-attention heads (16 in the paper); must divide both widths and
            both value widths.
        num_points: Sampling points per head (4 in the paper).
        value_ratio: Value width as a fraction of the receiving width (0.5 in the paper).
        ffn_ratio: ConvFFN hidden width fraction (0.25); ``0`` disables the ConvFFN.
        drop_path_rate: DropPath on the ConvFFN branches.
        norm_eps: LayerNorm epsilon.
        init_cfg: mmengine init config.

    Example:
        >>> unit = PIIPInteraction(dims=(64, 32), num_heads=4)
        >>> y_a, y_b = unit(torch.rand(2, 16, 64), (4, 4), torch.rand(2, 64, 32), (8, 8))
        >>> y_a.shape, y_b.shape
        (torch.Size([2, 16, 64]), torch.Size([2, 64, 32]))
    """

    def __init__(self, dims: Sequence[int], num_heads: int = 16, num_points: int = 4,
                 value_ratio: float = 0.5, ffn_ratio: float = 0.25, drop_path_rate: float = 0.0,
                 norm_eps: float = 1e-6, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(dims, (list, tuple)) or len(dims) != 2:
            raise ValueError(f'dims must be a pair (dim_a, dim_b), got {dims!r}')
        dim_a, dim_b = (int(d) for d in dims)
        common = dict(num_heads=num_heads, num_points=num_points, value_ratio=value_ratio,
                      ffn_ratio=ffn_ratio, drop_path=drop_path_rate, norm_eps=norm_eps)
        self.dims = (dim_a, dim_b)
        self.b_to_a = PIIPInjector(dim_a, dim_b, **common)
        self.a_to_b = PIIPInjector(dim_b, dim_a, **common)

    def forward(self, x_a: torch.Tensor, hw_a: HW, x_b: torch.Tensor,
                hw_b: HW) -> Tuple[torch.Tensor, torch.Tensor]:
        """Exchange information; returns the updated ``(x_a, x_b)`` with unchanged shapes."""
        new_a = self.b_to_a(x_a, hw_a, x_b, hw_b)
        new_b = self.a_to_b(x_b, hw_b, x_a, hw_a)
        return new_a, new_b
