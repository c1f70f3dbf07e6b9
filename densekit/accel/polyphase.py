"""Dilated depthwise convolutions as undilated ones on polyphase components (space-to-batch).

With stride 1 and "same" padding, a convolution with dilation ``d`` only ever combines pixels
whose coordinates agree modulo ``d``. Splitting the map into its ``d x d`` (or ``d^3``)
polyphase components, stacked along the batch, turns it into an undilated convolution with
padding ``(k - 1) / 2`` (after zero-padding each axis to a multiple of ``d``). oneDNN runs
undilated channels-last depthwise convolutions at memory speed, but its channels-last kernels
for large dilations (forward above 4, backward above 1) and its NCHW depthwise kernels are
several times slower, which is what DeepLab / JPU-style separable branches hit.

The components are built channels-last (``N, *spatial, C`` in memory), so every copy moves whole
channel vectors.
"""
from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ['space_to_batch', 'batch_to_space', 'cat_phases', 'conv_phases', 'conv_polyphase',
           'is_same_padded', 'channels_last', 'empty_channels_last', 'is_channels_last',
           'CL_DEPTHWISE_MAX_DILATION', 'under_autocast']

# Largest dilation oneDNN's channels-last depthwise forward kernel handles at full speed
# (measured with the torch 2.13 CPU build; larger ones fall back to a slow reference kernel).
CL_DEPTHWISE_MAX_DILATION = 4
_CONV_FNS = {2: F.conv2d, 3: F.conv3d}
_FORMATS = {4: torch.channels_last, 5: torch.channels_last_3d}


def under_autocast(x: Tensor, *tensors: Optional[Tensor]) -> Tuple[Optional[Tensor], ...]:
    """``(x, *tensors)`` cast to the autocast dtype of ``x``'s device when autocast is on (as
    autocast would cast a conv's inputs), else unchanged.

    The custom autograd Functions of the fast paths call ``aten.convolution_backward`` on the
    tensors they saved; casting first makes those tensors the ones the forward used, so a direct
    call under ``torch.autocast`` differentiates correctly (the dispatcher itself sends autocast
    calls to the plain ops).
    """
    device = x.device.type
    if not torch.is_autocast_enabled(device):
        return (x, *tensors)
    dtype = torch.get_autocast_dtype(device)
    return tuple(None if t is None else t.to(dtype) for t in (x, *tensors))


def channels_last(x: Tensor) -> Tensor:
    """``x`` (NCHW or NCDHW) in channels-last memory order (no copy if it already is)."""
    return x.contiguous(memory_format=_FORMATS[x.dim()])


def empty_channels_last(shape: Sequence[int], like: Tensor) -> Tensor:
    """Uninitialised channels-last tensor of ``shape`` (4D or 5D) with ``like``'s dtype/device."""
    return torch.empty(tuple(shape), dtype=like.dtype, device=like.device,
                       memory_format=_FORMATS[len(shape)])


def is_channels_last(x: Tensor) -> bool:
    """Whether ``x`` is stored channels-last (and has more than one channel)."""
    return x.dim() in _FORMATS and x.shape[1] > 1 and \
        x.is_contiguous(memory_format=_FORMATS[x.dim()])


def is_same_padded(kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                   dilation: Sequence[int]) -> bool:
    """Stride 1, odd kernel and padding ``dilation * (kernel - 1) / 2`` on every axis."""
    return all(s == 1 and k % 2 == 1 and p == d * (k - 1) // 2
               for k, s, p, d in zip(kernel, stride, padding, dilation))


def space_to_batch(x: Tensor, factors: Sequence[int]) -> Tensor:
    """Stack the polyphase components of ``x`` along the batch.

    Args:
        x: ``(N, C, *spatial)``.
        factors: Per-axis phase counts (the dilation).

    Returns:
        ``(N * prod(factors), C, *ceil(spatial / factors))``, channels-last; component
        ``(r_1, ..., r_k)`` of sample ``n`` is batch entry ``n * prod(factors) + index(r)`` and
        holds ``x[n, :, r_1::f_1, ...]`` (zero-padded at the far ends).
    """
    n, c, spatial = x.shape[0], x.shape[1], list(x.shape[2:])
    pads = [(-s) % f for s, f in zip(spatial, factors)]
    if any(pads):
        x = F.pad(x, [p for pad in reversed(pads) for p in (0, pad)])
    coarse = [(s + p) // f for s, p, f in zip(spatial, pads, factors)]
    split: List[int] = [n]
    for q, f in zip(coarse, factors):
        split += [q, f]
    dims = len(spatial)
    order = [0] + [2 + 2 * i for i in range(dims)] + [1 + 2 * i for i in range(dims)]
    order.append(2 * dims + 1)
    phases = x.movedim(1, -1).reshape(*split, c).permute(order)
    return phases.reshape(n * math.prod(factors), *coarse, c).movedim(-1, 1)


def batch_to_space(y: Tensor, factors: Sequence[int], spatial: Sequence[int],
                   out: Optional[Tensor] = None) -> Tensor:
    """Inverse of :func:`space_to_batch`, cropped to ``spatial``.

    Args:
        y: ``(N * prod(factors), C, *coarse)``.
        factors: Per-axis phase counts.
        spatial: Output spatial size (``<= coarse * factors``).
        out: Optional ``(N, C, *spatial)`` tensor (or view) to write into (no autograd).

    Returns:
        ``(N, C, *spatial)``, channels-last unless ``out`` is given.
    """
    dims = len(factors)
    n = y.shape[0] // math.prod(factors)
    c, coarse = y.shape[1], list(y.shape[2:])
    phases = y.movedim(1, -1).reshape(n, *factors, *coarse, c)
    order = [0]
    for i in range(dims):
        order += [1 + dims + i, 1 + i]
    order.append(2 * dims + 1)
    blocked = phases.permute(order)                      # (n, q_1, f_1, ..., q_k, f_k, c)
    full_size = [q * f for q, f in zip(coarse, factors)]
    if out is not None and full_size == list(spatial):
        out.movedim(1, -1).view(blocked.shape).copy_(blocked)   # one shuffle, no temporary
        return out
    full = blocked.reshape(n, *full_size, c)
    if full_size != list(spatial):
        full = full[(slice(None),) + tuple(slice(0, s) for s in spatial)]
    result = full.movedim(-1, 1)
    if out is not None:
        return out.copy_(result)
    return result


class _PhaseConv(torch.autograd.Function):
    """``conv(space_to_batch(x))`` keeping only ``x`` for backward (phases are recomputed)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Optional[Tensor],  # noqa: ANN205
                factors: Tuple[int, ...], groups: int) -> Tensor:
        padding = [(k - 1) // 2 for k in weight.shape[2:]]
        out = _CONV_FNS[x.dim() - 2](space_to_batch(x, factors), weight, bias, 1, padding, 1,
                                     groups)
        ctx.save_for_backward(x, weight)
        ctx.factors, ctx.groups, ctx.padding = factors, groups, padding
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor):  # noqa: ANN205
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dims = x.dim() - 2
        grad_phases, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad, space_to_batch(x, ctx.factors), weight,
            [weight.shape[0]] if ctx.has_bias else None, [1] * dims, ctx.padding, [1] * dims,
            False, [0] * dims, ctx.groups, [need_x, need_w, need_b and ctx.has_bias])
        grad_x = batch_to_space(grad_phases, ctx.factors, x.shape[2:]) if need_x else None
        return grad_x, grad_w, grad_b, None, None


def conv_phases(x: Tensor, weight: Tensor, bias: Optional[Tensor], factors: Sequence[int],
                groups: int) -> Tensor:
    """Undilated "same" conv of the polyphase components of ``x``.

    Equals ``conv(space_to_batch(x, factors), weight, bias, padding=(k - 1) / 2)``; with
    autograd only ``x`` is kept for backward (the components are rebuilt there).

    Returns:
        ``(N * prod(factors), C_out, *ceil(spatial / factors))``, channels-last.
    """
    factors = tuple(int(f) for f in factors)
    if torch.is_autocast_enabled(x.device.type):
        x, weight, bias = under_autocast(x, weight, bias)
        with torch.autocast(x.device.type, enabled=False):
            return conv_phases(x, weight, bias, factors, groups)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                       for t in (x, weight, bias)):
        return _PhaseConv.apply(x, weight, bias, factors, groups)
    padding = [(k - 1) // 2 for k in weight.shape[2:]]
    return _CONV_FNS[x.dim() - 2](space_to_batch(x, factors), weight, bias, 1, padding, 1,
                                  groups)


def conv_polyphase(x: Tensor, weight: Tensor, bias: Optional[Tensor], dilation: Sequence[int],
                   groups: int) -> Tensor:
    """Stride-1 "same"-padded dilated conv computed on polyphase components.

    Args:
        x: ``(N, C_in, *spatial)``, NCHW or NCDHW.
        weight: ``(C_out, C_in / groups, *kernel)`` with odd kernel sizes.
        bias: ``(C_out,)`` or None.
        dilation: Per-axis dilation.
        groups: Conv groups.

    Returns:
        ``(N, C_out, *spatial)`` channels-last, equal to ``conv(x, weight, bias,
        padding=dilation * (kernel - 1) / 2, dilation=dilation, groups=groups)``; e.g. x
        ``(2, 1536, 64, 64)`` and a depthwise 3x3 weight at dilation 8.
    """
    return batch_to_space(conv_phases(x, weight, bias, dilation, groups), dilation,
                          x.shape[2:])


class _CatPhases(torch.autograd.Function):
    """Channel concatenation of maps, some given as polyphase components, into one buffer."""

    @staticmethod
    def forward(ctx: Any, spatial: Tuple[int, ...],  # noqa: ANN205
                factors: Tuple[Optional[Tuple[int, ...]], ...], *parts: Tensor) -> Tensor:
        n = parts[0].shape[0] // math.prod(factors[0] or (1,))
        out = empty_channels_last((n, sum(p.shape[1] for p in parts), *spatial), parts[0])
        start = 0
        for part, f in zip(parts, factors):
            dst = out[:, start:start + part.shape[1]]
            if f is None:
                dst.copy_(part)
            else:
                batch_to_space(part, f, spatial, out=dst)
            start += part.shape[1]
        ctx.factors, ctx.channels = factors, [p.shape[1] for p in parts]
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor):  # noqa: ANN205
        grads, start = [], 0
        for c, f in zip(ctx.channels, ctx.factors):
            g = grad[:, start:start + c]
            grads.append(g if f is None else space_to_batch(g, f))
            start += c
        return (None, None, *grads)


def cat_phases(parts: Sequence[Tuple[Tensor, Optional[Sequence[int]]]],
               spatial: Sequence[int]) -> Tensor:
    """Concatenate along channels maps given either normally (``factors`` None) or as polyphase
    components (:func:`space_to_batch` with ``factors``), straight into one channels-last buffer.

    Args:
        parts: ``(tensor, factors)`` pairs; tensors ``(N, C_i, *spatial)`` or
            ``(N * prod(factors), C_i, *coarse)``.
        spatial: Spatial size of the result.

    Returns:
        ``(N, sum(C_i), *spatial)``, channels-last; differentiable w.r.t. every part.
    """
    tensors = [p for p, _ in parts]
    factors = tuple(None if f is None else tuple(int(v) for v in f) for _, f in parts)
    return _CatPhases.apply(tuple(int(s) for s in spatial), factors, *tensors)
