"""CATANet body (Liu, Liu, Tang, Wu, "CATANet: Efficient Content-Aware Token Aggregation for
Lightweight Image Super-Resolution", CVPR 2025).

Conv 3x3 ``in -> dim``, then residual groups of [:class:`TokenAggregationBlock` (TAB),
:class:`LocalRegionSelfAttention` (LRSA), 3x3 conv] each with a group residual, and a global
residual. The reconstruction head is :class:`~densekit.heads.CATANetHead` (pixel shuffle with
LeakyReLU, 3x3 conv, plus the upsampled input image).

TAB groups similar tokens wherever they are in the image. Each TAB keeps ``M`` token centres
(a buffer shared by all images, saved in the state dict). A token belongs to the centre of
highest cosine similarity; tokens are stably sorted by centre index and the sorted sequence is
cut into consecutive chunks of ``group_size`` (so a chunk may straddle two clusters; the tail
is padded with the mirrored last tokens). Intra-group self-attention (IASA) lets each chunk
attend to itself and the next chunk (a window of ``2 * group_size``); inter-group
cross-attention (IRCA) lets every token attend to all centres. The two are summed, projected,
put back in raster order, passed through a 1x1 conv and added to the input; a pre-norm
:class:`ConvFFN` follows.

Centres in training: the first step initialises them from the means of ``M`` contiguous token
chunks (pooled over the batch); every step runs ``num_iters - 1`` hard spherical k-means
iterations without gradients from the stored centres and one more with gradients through the
tokens (these centres are the ones attended to), then updates the buffer by an exponential
moving average (``ema_decay``; the first step copies). In eval mode the buffer is used as it
is and never changes, so inference is deterministic and each image's result does not depend on
the other images of its batch. Before any training step the centres are zero: every token then
falls in the first centre and the tokens keep their raster order.

Defaults are the paper's: dim 40, qk_dim 36, 4 heads, FFN hidden 96, 8 groups with centres
16/32/64/128, group sizes 256/128/64/32 and LRSA patches 16/20/24/28 (twice). With the head:
477,435 (x2), 549,635 (x3), 535,195 (x4) parameters.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densekit.backbones.contract import FullResolutionBody
from densekit.errors import ArgumentError, positive_int
from densekit.layers import LayerFactory, size_tensor
from densekit.registry import MODELS

_LAYERS = LayerFactory(2)

__all__ = ['CATANetBody', 'TokenAggregationBlock', 'LocalRegionSelfAttention', 'ConvFFN',
           'sort_tokens', 'restore_order', 'mirror_index', 'patch_starts', 'patch_layout']



def _heads(num_heads: int, dims: Sequence[Tuple[str, int]]) -> int:
    positive_int(num_heads, 'num_heads')
    for name, value in dims:
        positive_int(value, name)
        if value % num_heads:
            raise ArgumentError(f'num_heads={num_heads} must divide {name}={value}')
    return num_heads


def mirror_index(length: Union[int, Tensor], total: Union[int, Tensor],
                 device: torch.device) -> Tensor:
    """Indices ``0 .. total-1`` into a sequence of ``length``, mirrored past its end.

    Position ``length + j`` maps to ``length - 1 - j`` (the tail padded with the flipped last
    tokens), repeating with period ``2 * length``.

    Example:
        >>> mirror_index(3, 7, torch.device('cpu')).tolist()
        [0, 1, 2, 2, 1, 0, 0]
    """
    pos = torch.arange(total, device=device) % (2 * length)
    return torch.where(pos < length, pos, 2 * length - 1 - pos)


def sort_tokens(tokens: Tensor, centres: Tensor) -> Tuple[Tensor, Tensor]:
    """Tokens ``(B, N, C)`` stably sorted by their highest-cosine centre ``(M, C)``.

    Returns the sorted tokens and the permutation ``(B, N)`` (sorted position -> raster index).
    The stable sort is a ``topk`` over the whole length of the unique keys
    ``centre * N + position`` (the same permutation as a stable argsort of the centre
    indices), so the length stays a tensor and the sort exports with dynamic sizes.
    """
    scores = F.normalize(tokens, dim=-1) @ F.normalize(centres, dim=-1).t()
    length = size_tensor(tokens, 1)
    keys = scores.argmax(dim=-1) * length + torch.arange(length, device=tokens.device)
    order = torch.topk(keys, length, dim=-1, largest=False, sorted=True).indices
    return tokens.gather(1, order.unsqueeze(-1).expand_as(tokens)), order


def restore_order(sorted_tokens: Tensor, order: Tensor) -> Tensor:
    """Inverse of :func:`sort_tokens`: put ``(B, N, C)`` tokens back in raster order."""
    index = order.unsqueeze(-1).expand_as(sorted_tokens)
    return torch.zeros_like(sorted_tokens).scatter(1, index, sorted_tokens)


def patch_starts(length: int, patch: int) -> Tuple[int, List[int]]:
    """LRSA patch layout along one axis: the patch size used and the patch start offsets.

    Patches of ``patch`` pixels overlap by 2 (stride ``patch - 2``); the last one is moved back
    to end at the border. An axis shorter than ``patch`` is one patch of the whole axis.

    Example:
        >>> patch_starts(40, 16)
        (16, [0, 14, 24])
    """
    if length <= patch:
        return length, [0]
    step = patch - 2
    return patch, [min(i, length - patch) for i in range(0, length + step - patch, step)]


def patch_layout(length: Tensor, patch: int) -> Tuple[Tensor, Tensor]:
    """:func:`patch_starts` with the length as a 0-d int64 tensor: the patch size used and the
    start offsets as tensors (so LRSA exports with dynamic sizes).

    Example:
        >>> size, starts = patch_layout(torch.tensor(40), 16)
        >>> int(size), starts.tolist()
        (16, [0, 14, 24])
    """
    size = torch.clamp(length, max=patch)
    step = patch - 2
    count = torch.div(length - size + step - 1, step, rounding_mode='floor') + 1
    starts = torch.minimum(torch.arange(count, device=length.device) * step, length - size)
    return size, starts


class ConvFFN(nn.Module):
    """Token MLP with a depthwise conv: Linear -> GELU -> ``+ GELU(dwconv5x5)`` -> Linear.

    Shape:
        ``(B, H*W, C)`` tokens of an ``H x W`` map -> same.
    """

    per_sample_eval = True

    def __init__(self, dim: int, hidden_dim: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.dwconv = _LAYERS.conv(hidden_dim, hidden_dim, kernel_size,
                                   padding=kernel_size // 2, groups=hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor, size: Tuple[int, int]) -> Tensor:  # noqa: D102
        x = self.act(self.fc1(x))
        b, n, c = x.shape
        local = self.dwconv(x.transpose(1, 2).reshape(b, c, *size))
        x = x + self.act(local).flatten(2).transpose(1, 2)
        return self.fc2(x)


def _split_heads(x: Tensor, heads: int) -> Tensor:
    """``(..., N, heads * d)`` -> ``(..., heads, N, d)``."""
    *lead, n, c = x.shape
    return x.reshape(*lead, n, heads, c // heads).transpose(-3, -2)


def _merge_heads(x: Tensor) -> Tensor:
    """``(..., heads, N, d)`` -> ``(..., N, heads * d)``."""
    x = x.transpose(-3, -2)
    return x.reshape(*x.shape[:-2], -1)


class TokenAggregationBlock(nn.Module):
    """TAB: content-aware token grouping with IASA + IRCA, 1x1 conv, pre-norm ConvFFN.

    Args:
        dim: Token channels.
        qk_dim: Query/key channels (all heads).
        num_heads: Attention heads.
        hidden_dim: ConvFFN hidden channels.
        num_centres: Token centres M.
        group_size: Tokens per IASA chunk (keys: twice as many).
        num_iters: k-means iterations per training step (the last with gradients).
        ema_decay: Weight of the stored centres in the moving average.

    Shape:
        ``(B, dim, H, W)`` -> same.
    """

    per_sample_eval = True  # eval: fixed centres, each image sorted and grouped on its own

    def __init__(self, dim: int, qk_dim: int, num_heads: int, hidden_dim: int,
                 num_centres: int, group_size: int, num_iters: int = 5,
                 ema_decay: float = 0.999) -> None:
        super().__init__()
        self.heads = _heads(num_heads, (('dim', dim), ('qk_dim', qk_dim)))
        positive_int(hidden_dim, 'hidden_dim')
        self.num_centres = positive_int(num_centres, 'num_centres')
        self.group_size = positive_int(group_size, 'group_size')
        self.num_iters = positive_int(num_iters, 'num_iters')
        if isinstance(ema_decay, bool) or not isinstance(ema_decay, (int, float)) \
                or not 0 <= ema_decay < 1:
            raise ArgumentError(f'ema_decay must be a float in [0, 1), got {ema_decay!r}')
        self.ema_decay = float(ema_decay)
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, qk_dim, bias=False)
        self.to_k = nn.Linear(dim, qk_dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.centre_k = nn.Linear(dim, qk_dim, bias=False)  # IRCA keys / values of the centres
        self.centre_v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.conv = _LAYERS.conv(dim, dim, 1, bias=False)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = ConvFFN(dim, hidden_dim)
        self.register_buffer('centres', torch.zeros(num_centres, dim))
        self.register_buffer('initted', torch.tensor(False))

    # -- centres ------------------------------------------------------------------------------
    def _initial_centres(self, tokens: Tensor) -> Tensor:
        """Means of M contiguous token chunks, pooled over the batch (a chunk of at least one
        token when N < M)."""
        n, m = tokens.shape[1], self.num_centres
        csum = F.pad(tokens.sum(0).cumsum(0), (0, 0, 1, 0))  # (N + 1, C)
        starts = torch.arange(m, device=tokens.device) * n // m
        ends = torch.maximum((torch.arange(m, device=tokens.device) + 1) * n // m, starts + 1)
        count = ((ends - starts) * tokens.shape[0]).unsqueeze(-1).to(tokens.dtype)
        return (csum[ends] - csum[starts]) / count

    @staticmethod
    def _kmeans_step(unit_tokens: Tensor, centres: Tensor) -> Tensor:
        """One hard spherical k-means iteration on ``(T, C)`` unit tokens; an empty cluster
        keeps its centre."""
        ids = (unit_tokens @ F.normalize(centres, dim=-1).t()).argmax(dim=-1)
        sums = torch.zeros_like(centres, dtype=unit_tokens.dtype).index_add(0, ids, unit_tokens)
        filled = torch.bincount(ids, minlength=centres.shape[0]).unsqueeze(-1) > 0
        return torch.where(filled, F.normalize(sums, dim=-1), centres.to(sums.dtype))

    def update_centres(self, tokens: Tensor) -> Tensor:
        """Training step on normalised ``(B, N, C)`` tokens: k-means from the stored centres,
        EMA update of the buffer; returns the centres to attend to (with gradients)."""
        unit = F.normalize(tokens.reshape(-1, tokens.shape[-1]), dim=-1)
        with torch.no_grad():
            centres = self.centres if bool(self.initted) else \
                self._initial_centres(tokens.detach())
            for _ in range(self.num_iters - 1):
                centres = self._kmeans_step(unit.detach(), centres)
        centres = self._kmeans_step(unit, centres.detach())
        with torch.no_grad():
            new = centres.detach().to(self.centres.dtype)
            if bool(self.initted):
                self.centres.mul_(self.ema_decay).add_(new, alpha=1 - self.ema_decay)
            else:
                self.centres.copy_(new)
                self.initted.fill_(True)
        return centres

    # -- attention ----------------------------------------------------------------------------
    def _intra_group(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """IASA over sorted ``(B, heads, N, d)`` tensors: chunk g attends to chunks g, g+1."""
        n = size_tensor(q, -2)
        size = torch.clamp(n, max=self.group_size)
        groups = -torch.div(-n, size, rounding_mode='floor')
        q_index = mirror_index(n, groups * size, q.device).view(groups, size)
        starts = torch.arange(groups, device=q.device).unsqueeze(-1) * size
        kv_index = mirror_index(n, (groups + 1) * size, q.device)[
            starts + torch.arange(2 * size, device=q.device)]
        out = F.scaled_dot_product_attention(q[:, :, q_index], k[:, :, kv_index],
                                             v[:, :, kv_index])  # (B, heads, G, size, d)
        return out.flatten(2, 3)[:, :, :n]

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        b, c, h, w = x.shape
        tokens = self.norm(x.flatten(2).transpose(1, 2))
        centres = self.update_centres(tokens) if self.training else self.centres
        centres = centres.to(tokens.dtype)
        ordered, order = sort_tokens(tokens, centres)
        q = _split_heads(self.to_q(ordered), self.heads)
        intra = self._intra_group(q, _split_heads(self.to_k(ordered), self.heads),
                                  _split_heads(self.to_v(ordered), self.heads))
        centre_k = _split_heads(self.centre_k(centres), self.heads).expand(b, -1, -1, -1)
        centre_v = _split_heads(self.centre_v(centres), self.heads).expand(b, -1, -1, -1)
        inter = F.scaled_dot_product_attention(q, centre_k.to(q.dtype), centre_v.to(q.dtype))
        mixed = restore_order(self.proj(_merge_heads(intra + inter)), order)
        x = x + self.conv(mixed.transpose(1, 2).reshape(b, c, h, w))
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.ffn(self.ffn_norm(tokens), (h, w))
        return tokens.transpose(1, 2).reshape(b, c, h, w)


class LocalRegionSelfAttention(nn.Module):
    """LRSA: full self-attention in overlapping square patches (overlaps averaged), pre-norm
    residual, then a pre-norm :class:`ConvFFN` on the whole map.

    Shape:
        ``(B, dim, H, W)`` -> same; any ``H, W`` (see :func:`patch_starts`).
    """

    per_sample_eval = True
    onnx_min_opset = 16  # the overlap sums: ScatterElements with reduction='add'

    def __init__(self, dim: int, qk_dim: int, num_heads: int, hidden_dim: int,
                 patch_size: int) -> None:
        super().__init__()
        self.heads = _heads(num_heads, (('dim', dim), ('qk_dim', qk_dim)))
        positive_int(hidden_dim, 'hidden_dim')
        if positive_int(patch_size, 'patch_size') < 3:
            raise ArgumentError(f'patch_size must be at least 3 (patches overlap by 2 pixels), '
                                f'got {patch_size!r}')
        self.patch_size = patch_size
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, qk_dim, bias=False)
        self.to_k = nn.Linear(dim, qk_dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = ConvFFN(dim, hidden_dim)

    def _attend(self, tokens: Tensor) -> Tensor:
        t = self.norm(tokens)
        q, k, v = (_split_heads(f(t), self.heads) for f in (self.to_q, self.to_k, self.to_v))
        return self.proj(_merge_heads(F.scaled_dot_product_attention(q, k, v)))

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        b, c, h, w = x.shape
        ph, tops = patch_layout(size_tensor(x, 2), self.patch_size)
        pw, lefts = patch_layout(size_tensor(x, 3), self.patch_size)
        rows = tops.to(x.device).unsqueeze(-1) + torch.arange(ph, device=x.device)   # (nh, ph)
        cols = lefts.to(x.device).unsqueeze(-1) + torch.arange(pw, device=x.device)  # (nw, pw)
        flat = (rows[:, None, :, None] * w + cols[None, :, None, :]).reshape(-1)
        # (B, C, nh*nw*ph*pw) -> one token sequence per patch
        patches = x.flatten(2)[:, :, flat].reshape(b, c, -1, ph * pw).permute(0, 2, 3, 1)
        attended = self._attend(patches.reshape(-1, ph * pw, c)).reshape(patches.shape)
        # overlaps summed and averaged by scatter-adds (ONNX ScatterElements, reduction add)
        summed = x.new_zeros(b, c, h * w).scatter_add(
            2, flat.expand(b, c, -1), attended.permute(0, 3, 1, 2).flatten(2))
        cover = x.new_zeros(h * w).scatter_add(0, flat, x.new_ones(flat.shape))
        tokens = (x.flatten(2) + summed / cover).transpose(1, 2)
        tokens = tokens + self.ffn(self.ffn_norm(tokens), (h, w))
        return tokens.transpose(1, 2).reshape(b, c, h, w)


class _ResidualGroup(nn.Module):
    per_sample_eval = True

    def __init__(self, dim: int, qk_dim: int, num_heads: int, hidden_dim: int,
                 num_centres: int, group_size: int, patch_size: int, num_iters: int,
                 ema_decay: float) -> None:
        super().__init__()
        self.tab = TokenAggregationBlock(dim, qk_dim, num_heads, hidden_dim, num_centres,
                                         group_size, num_iters, ema_decay)
        self.lrsa = LocalRegionSelfAttention(dim, qk_dim, num_heads, hidden_dim, patch_size)
        self.conv = _LAYERS.conv(dim, dim, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return x + self.conv(self.lrsa(self.tab(x)))


def _per_group(name: str, value: object) -> Tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ArgumentError(f'{name} must be a non-empty sequence of positive ints (one per '
                            f'residual group), got {value!r}')
    return tuple(positive_int(v, f'{name} item') for v in value)


@MODELS.register_module()
class CATANetBody(FullResolutionBody, nn.Module):
    """CATANet feature extractor: conv, residual groups [TAB, LRSA, conv], global residual.

    Args:
        in_channels: Image channels.
        dim: Feature channels (40).
        qk_dim: Query/key channels of every attention (36).
        num_heads: Attention heads (4).
        hidden_dim: ConvFFN hidden channels (96).
        num_centres: Token centres per residual group (its length sets the group count).
        group_sizes: IASA chunk size per group.
        patch_sizes: LRSA patch size per group.
        num_iters: k-means iterations per training step (5).
        ema_decay: Moving-average weight of the stored centres (0.999).

    Shape:
        ``(N, in, H, W)`` -> ``(N, dim, H, W)``, any ``H, W``; e.g. (1, 3, 13, 11) ->
        (1, 40, 13, 11).

    Example:
        >>> body = CATANetBody(dim=8, qk_dim=8, num_heads=2, hidden_dim=8, num_centres=(4,),
        ...                    group_sizes=(16,), patch_sizes=(8,))
        >>> body.eval()(torch.randn(1, 3, 13, 11)).shape
        torch.Size([1, 8, 13, 11])
    """

    per_sample_eval = True

    def __init__(self, in_channels: int = 3, dim: int = 40, qk_dim: int = 36,
                 num_heads: int = 4, hidden_dim: int = 96,
                 num_centres: Sequence[int] = (16, 32, 64, 128, 16, 32, 64, 128),
                 group_sizes: Sequence[int] = (256, 128, 64, 32, 256, 128, 64, 32),
                 patch_sizes: Sequence[int] = (16, 20, 24, 28, 16, 20, 24, 28),
                 num_iters: int = 5, ema_decay: float = 0.999) -> None:
        super().__init__()
        positive_int(in_channels, 'in_channels')
        centres = _per_group('num_centres', num_centres)
        sizes = _per_group('group_sizes', group_sizes)
        patches = _per_group('patch_sizes', patch_sizes)
        if not len(centres) == len(sizes) == len(patches):
            raise ArgumentError(f'num_centres, group_sizes and patch_sizes need one entry per '
                                f'residual group, got lengths {len(centres)}, {len(sizes)}, '
                                f'{len(patches)}')
        self.conv_first = _LAYERS.conv(in_channels, positive_int(dim, 'dim'), 3, padding=1)
        self.groups = nn.Sequential(*[
            _ResidualGroup(dim, qk_dim, num_heads, hidden_dim, m, gs, ps, num_iters, ema_decay)
            for m, gs, ps in zip(centres, sizes, patches)])
        self.out_channels = (dim,)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        feat = self.conv_first(x)
        return feat + self.groups(feat)
