"""DRSformer's sparse transformer block: channel LayerNorm, TKSA attention and the MSFN FFN.

* the norms are :class:`~densekit.layers.norm.ChannelLayerNorm` (eps 1e-5): each pixel's channel
  vector is normalised (with bias), ``(N, C, H, W)``.
* :class:`TKSA` (top-k sparse attention) is Restormer-style *transposed* attention between
  channels: q, k, v from a 1x1 conv and a depthwise 3x3 conv, L2-normalised q and k along
  the pixels, a learnable temperature per head. Each query keeps only its top-k keys (others
  are set to -inf before the softmax) for four k (C'/2, 2C'/3, 3C'/4, 4C'/5, C' = channels per
  head); the four attention maps are summed with learnable weights (initially 0.2).
* :class:`MSFN` (mixed-scale FFN): 1x1 to 2h (h = 2.66 C), parallel depthwise 3x3 and 5x5 +
  ReLU, halves cross-concatenated, grouped 3x3 and 5x5 + ReLU, concatenated, 1x1 back to C.
* :class:`SparseBlock`: pre-norm ``x + TKSA(LN(x))``, ``x + MSFN(LN(x))``.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densekit.errors import positive_int
from densekit.layers import ChannelLayerNorm, LayerFactory

__all__ = ['TKSA', 'MSFN', 'SparseBlock', 'TOPK_FRACTIONS', 'LN_EPS']

_LAYERS = LayerFactory(2)
# DRSformer's channel LayerNorm eps (ChannelLayerNorm's default is ConvNeXt's 1e-6)
LN_EPS = 1e-5

TOPK_FRACTIONS: Tuple[Tuple[int, int], ...] = ((1, 2), (2, 3), (3, 4), (4, 5))


class TKSA(nn.Module):
    """Top-k sparse transposed self-attention.

    Args:
        dim: Channels C.
        num_heads: Heads; must divide ``dim``.
        bias: Bias in the 1x1 / depthwise convs.
        topk_fractions: ``(numerator, denominator)`` of each top-k (k = C' * num // den).

    Shape:
        ``(N, C, H, W)`` -> same; e.g. (1, 48, 32, 32) -> (1, 48, 32, 32).
    """

    def __init__(self, dim: int, num_heads: int, bias: bool = False,
                 topk_fractions: Sequence[Tuple[int, int]] = TOPK_FRACTIONS) -> None:
        super().__init__()
        positive_int(dim, 'dim')
        positive_int(num_heads, 'num_heads')
        if dim % num_heads:
            raise ValueError(f'num_heads={num_heads} must divide dim={dim}')
        head_dim = dim // num_heads
        self.ks = tuple(max(1, head_dim * num // den) for num, den in topk_fractions)
        if not self.ks or any(not 0 < num <= den for num, den in topk_fractions):
            raise ValueError('topk_fractions must be (num, den) pairs with 0 < num <= den, got '
                             f'{topk_fractions!r}')
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = _LAYERS.conv(dim, dim * 3, 1, bias=bias)
        self.qkv_dw = _LAYERS.conv(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.mix = nn.Parameter(torch.full((len(self.ks),), 0.2))
        self.proj = _LAYERS.conv(dim, dim, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        n, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).reshape(n, 3, self.num_heads, -1, h * w).unbind(1)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature  # (N, heads, C', C')
        kmax = max(self.ks)
        order = attn.topk(kmax, dim=-1).indices  # sorted, largest first
        rank = torch.full(attn.shape, kmax, dtype=torch.long, device=x.device)
        rank.scatter_(-1, order, torch.arange(kmax, device=x.device).expand_as(order))
        probs = None
        for weight, keep in zip(self.mix, self.ks):
            p = attn.masked_fill(rank >= keep, float('-inf')).softmax(dim=-1) * weight
            probs = p if probs is None else probs + p
        out = (probs @ v).reshape(n, c, h, w)
        return self.proj(out)


class MSFN(nn.Module):
    """Mixed-scale feed-forward network.

    Shape:
        ``(N, C, H, W)`` -> same.
    """

    def __init__(self, dim: int, expansion: float = 2.66, bias: bool = False) -> None:
        super().__init__()
        positive_int(dim, 'dim')
        if not expansion > 0:
            raise ValueError(f'expansion must be > 0, got {expansion!r}')
        hidden = max(1, int(dim * expansion))
        self.project_in = _LAYERS.conv(dim, hidden * 2, 1, bias=bias)
        self.dw3 = _LAYERS.conv(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.dw5 = _LAYERS.conv(hidden * 2, hidden * 2, 5, padding=2, groups=hidden * 2, bias=bias)
        self.mix3 = _LAYERS.conv(hidden * 2, hidden, 3, padding=1, groups=hidden, bias=bias)
        self.mix5 = _LAYERS.conv(hidden * 2, hidden, 5, padding=2, groups=hidden, bias=bias)
        self.project_out = _LAYERS.conv(hidden * 2, dim, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        x = self.project_in(x)
        a3, b3 = F.relu(self.dw3(x)).chunk(2, dim=1)
        a5, b5 = F.relu(self.dw5(x)).chunk(2, dim=1)
        x1 = F.relu(self.mix3(torch.cat([a3, a5], dim=1)))
        x2 = F.relu(self.mix5(torch.cat([b3, b5], dim=1)))
        return self.project_out(torch.cat([x1, x2], dim=1))


class SparseBlock(nn.Module):
    """Pre-norm sparse transformer block: ``x + TKSA(LN(x))`` then ``x + MSFN(LN(x))``."""

    def __init__(self, dim: int, num_heads: int, expansion: float = 2.66,
                 bias: bool = False) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim, eps=LN_EPS)
        self.attn = TKSA(dim, num_heads, bias)
        self.norm2 = ChannelLayerNorm(dim, eps=LN_EPS)
        self.ffn = MSFN(dim, expansion, bias)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))
