"""Zero-padded convolutions whose kernel taps mostly land in the padding.

A 3x3 convolution with dilation ``d`` and padding ``d`` on an ``L``-pixel axis multiplies
zeros for ``2 * min(d, L)`` of its ``3 * L`` tap positions per axis. For ASPP-style rates
(12 / 24 / 36 on a 64x64 map) that is 23 % / 44 % / 61 % of all multiply-adds.

Two ways to skip that work, both exact up to float summation order:

* :func:`sparse_tap_plan` + oneDNN's channels-last kernels, which skip taps that fall
  entirely in the padding, forward and backward. This is what the dispatcher's ``tap_skip``
  path runs (:func:`~densekit.accel.conv.conv_forward`): an NCHW conv with at most
  :data:`SPARSE_MAX_FRACTION` of its taps in bounds runs on a channels-last copy of its input
  and returns NCHW. Measured on 2 AVX2 cores (``python tools/benchmark.py necks --only conv``,
  batch 2, against torch's own conv): 2048 -> 512 channels at 64x64, rate 36 (39 % of the taps
  in bounds): 0.67 of torch's time in inference, 0.72 for forward + backward (the input's
  channels-last copy costs 64 MiB of peak memory in inference); 3D, 128 -> 64 at 24^3, rate 12
  (30 %): 0.28 and 0.59. Rates with more taps in bounds lost in one-conv timings (2D rate 24,
  56 %: forward + backward 1.43-1.52 s against 1.27-1.43 s; 3D rate 6 at 16^3, 42 %: forward
  31 ms against 24 ms), hence the threshold; they run the plain conv (rate 24 row: 1.01).
* :func:`conv_skip_padding`, the same conv written as a union of smaller convs with
  sub-kernels and no padding, one per "zone" of constant in-bounds taps (:func:`zone_plan`).
  It runs on any layout and backend, but on oneDNN it was slower than the channels-last kernels
  in every case timed (rate 36: forward 650 ms against 349 ms, forward + backward 1.75-2.08 s
  against 1.26-1.39 s), so the dispatcher no longer uses it; it stays a public function for
  direct use.
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from densekit.accel.polyphase import under_autocast

__all__ = ['axis_segments', 'valid_tap_fraction', 'zone_plan', 'conv_skip_padding',
           'skip_plan', 'sparse_tap_plan', 'SKIP_MIN_FRACTION', 'SKIP_MIN_MACS',
           'SPARSE_MAX_FRACTION', 'ZONE_FORWARD_MAX_FRACTION']

# skip_plan: zones only when they save at least this fraction of the multiply-adds of a conv
# worth at least SKIP_MIN_MACS; below that the extra crops and kernel launches cost more than
# the skipped taps. SKIP_MIN_MACS also bounds sparse_tap_plan (the layout copies cost).
SKIP_MIN_FRACTION = 0.12
SKIP_MIN_MACS = 5e7
# sparse_tap_plan: channels-last only when at most this fraction of the taps is in bounds
# (measured, module docstring).
SPARSE_MAX_FRACTION = 0.40
# The backward always goes zone by zone; the NCHW forward only when at most this fraction of
# the taps is in bounds (measured: rate 36 on 64x64 gains, rates 12 / 24 lose).
ZONE_FORWARD_MAX_FRACTION = 0.45

_CONV_FNS = {2: F.conv2d, 3: F.conv3d}
# (out_start, out_stop, first_tap, last_tap, in_start, in_stop); first_tap > last_tap: no tap.
Segment = Tuple[int, int, int, int, int, int]
# (out slices, in slices or None, tap slices or None), one entry per zone.
Zone = Tuple[Tuple[slice, ...], Optional[Tuple[slice, ...]], Optional[Tuple[slice, ...]]]


@functools.lru_cache(maxsize=1024)
def axis_segments(size: int, kernel: int, dilation: int, padding: int) -> Tuple[Segment, ...]:
    """Split one output axis (stride 1) into runs with the same in-bounds taps.

    Output position ``o`` reads input ``o - padding + t * dilation`` for tap ``t``.

    Example:
        >>> axis_segments(64, 3, 36, 36)
        ((0, 28, 1, 2, 0, 64), (28, 36, 1, 1, 28, 36), (36, 64, 0, 1, 0, 64))
    """
    out_size = size + 2 * padding - dilation * (kernel - 1)
    segments: List[List[int]] = []
    for o in range(out_size):
        first = max(0, -((o - padding) // dilation))          # ceil((padding - o) / dilation)
        last = min(kernel - 1, (size - 1 - o + padding) // dilation)
        if segments and segments[-1][1] == o and segments[-1][2:4] == [first, last]:
            segments[-1][1] = o + 1
        else:
            segments.append([o, o + 1, first, last])
    result = []
    for start, stop, first, last in segments:
        in_start = start - padding + first * dilation
        in_stop = stop - 1 - padding + last * dilation + 1
        result.append((start, stop, first, last, in_start, in_stop))
    return tuple(result)


def valid_tap_fraction(spatial: Sequence[int], kernel: Sequence[int], dilation: Sequence[int],
                       padding: Sequence[int]) -> float:
    """Fraction of a zero-padded stride-1 conv's multiply-adds that touch real input.

    Example:
        >>> round(valid_tap_fraction((64, 64), (3, 3), (36, 36), (36, 36)), 3)
        0.391
    """
    fraction = 1.0
    for size, k, d, p in zip(spatial, kernel, dilation, padding):
        segments = axis_segments(int(size), int(k), int(d), int(p))
        used = sum((s[1] - s[0]) * max(0, s[3] - s[2] + 1) for s in segments)
        total = (segments[-1][1] if segments else 0) * k
        fraction *= used / total if total else 1.0
    return fraction


@functools.lru_cache(maxsize=512)
def zone_plan(spatial: Tuple[int, ...], kernel: Tuple[int, ...], dilation: Tuple[int, ...],
              padding: Tuple[int, ...]) -> Tuple[Zone, ...]:
    """The zones of a zero-padded stride-1 conv: output slices, input crop and sub-kernel."""
    per_axis = [axis_segments(*args) for args in zip(spatial, kernel, dilation, padding)]
    zones = []
    for combo in itertools.product(*per_axis):
        out_sl = tuple(slice(s[0], s[1]) for s in combo)
        if any(s[2] > s[3] for s in combo):
            zones.append((out_sl, None, None))
        else:
            zones.append((out_sl, tuple(slice(s[4], s[5]) for s in combo),
                          tuple(slice(s[2], s[3] + 1) for s in combo)))
    return tuple(zones)


def _eligible(x: Tensor, weight: Tensor, stride: Sequence[int], padding: Sequence[int],
              groups: int) -> bool:
    """A dense, stride-1, numerically zero-padded conv with a spatial kernel, big enough to
    be worth a different algorithm, whose output is not empty."""
    kernel = tuple(weight.shape[2:])
    if (groups != 1 or any(s != 1 for s in stride) or all(k == 1 for k in kernel)
            or not all(isinstance(p, int) for p in padding)):
        return False
    spatial = tuple(x.shape[2:])
    macs = x.shape[0] * weight.shape[0] * weight[0].numel() * math.prod(spatial)
    return macs >= SKIP_MIN_MACS


def _valid(x: Tensor, weight: Tensor, padding: Sequence[int], dilation: Sequence[int]) -> bool:
    return all(sz + 2 * p - d * (k - 1) >= 1 for sz, p, d, k
               in zip(x.shape[2:], padding, dilation, weight.shape[2:]))


def skip_plan(x: Tensor, weight: Tensor, stride: Sequence[int], padding: Sequence[int],
              dilation: Sequence[int], groups: int) -> Optional[Tuple[Zone, ...]]:
    """The zone plan for :func:`conv_skip_padding` if skipping padding taps saves at least
    :data:`SKIP_MIN_FRACTION` of the work, else ``None``."""
    if not (_eligible(x, weight, stride, padding, groups) and _valid(x, weight, padding, dilation)):
        return None
    spatial, kernel = tuple(x.shape[2:]), tuple(weight.shape[2:])
    if valid_tap_fraction(spatial, kernel, dilation, padding) > 1.0 - SKIP_MIN_FRACTION:
        return None
    return zone_plan(spatial, kernel, tuple(dilation), tuple(padding))


def sparse_tap_plan(x: Tensor, weight: Tensor, stride: Sequence[int], padding: Sequence[int],
                    dilation: Sequence[int], groups: int) -> bool:
    """Whether this conv has so few in-bounds taps (at most :data:`SPARSE_MAX_FRACTION`) that
    oneDNN's channels-last kernels, which skip the rest, beat the plain NCHW conv even with
    the two layout copies (see the module docstring for the measurements)."""
    if not (_eligible(x, weight, stride, padding, groups) and _valid(x, weight, padding, dilation)):
        return False
    fraction = valid_tap_fraction(tuple(x.shape[2:]), tuple(weight.shape[2:]), dilation, padding)
    return fraction <= SPARSE_MAX_FRACTION


def _out_shape(x: Tensor, weight: Tensor, zones: Tuple[Zone, ...]) -> Tuple[int, ...]:
    spatial = tuple(max(z[0][i].stop for z in zones) for i in range(x.dim() - 2))
    return (x.shape[0], weight.shape[0], *spatial)


def _run_zones(x: Tensor, weight: Tensor, bias: Optional[Tensor], zones: Tuple[Zone, ...],
               dilation: Tuple[int, ...], groups: int, out: Tensor) -> Tensor:
    conv = _CONV_FNS[x.dim() - 2]
    lead = (slice(None), slice(None))
    for out_sl, in_sl, tap_sl in zones:
        dst = out[lead + out_sl]
        if in_sl is None:
            if bias is None:
                dst.zero_()
            else:
                dst.copy_(bias.reshape((1, -1) + (1,) * (x.dim() - 2)).expand_as(dst))
            continue
        dst.copy_(conv(x[lead + in_sl], weight[lead + tap_sl], bias, 1, 0, dilation, groups))
    return out


class _SkipPaddingConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Optional[Tensor],  # noqa: ANN205
                zones: Tuple[Zone, ...], padding: Tuple[int, ...], dilation: Tuple[int, ...],
                groups: int) -> Tensor:
        out = _forward(x, weight, bias, zones, padding, dilation, groups, None)
        ctx.save_for_backward(x, weight)
        ctx.zones, ctx.dilation, ctx.groups = zones, dilation, groups
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor):  # noqa: ANN205
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dims = x.dim() - 2
        grad_x = torch.zeros_like(x) if need_x else None
        grad_w = torch.zeros_like(weight) if need_w else None
        grad_b = grad_out.sum(dim=(0, *range(2, 2 + dims))) if need_b and ctx.has_bias else None
        lead = (slice(None), slice(None))
        for out_sl, in_sl, tap_sl in ctx.zones:
            if in_sl is None or not (need_x or need_w):
                continue
            gx, gw, _ = torch.ops.aten.convolution_backward(
                grad_out[lead + out_sl], x[lead + in_sl], weight[lead + tap_sl].contiguous(),
                None, [1] * dims, [0] * dims, list(ctx.dilation), False, [0] * dims, ctx.groups,
                [need_x, need_w, False])
            if need_x:
                grad_x[lead + in_sl] += gx
            if need_w:
                grad_w[lead + tap_sl] += gw
        return grad_x, grad_w, grad_b, None, None, None, None


def _memory_format(x: Tensor) -> torch.memory_format:
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
            and not x.is_contiguous():
        return torch.channels_last
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d) \
            and not x.is_contiguous():
        return torch.channels_last_3d
    return torch.contiguous_format


def conv_skip_padding(x: Tensor, weight: Tensor, bias: Optional[Tensor],
                      zones: Tuple[Zone, ...], padding: Sequence[int], dilation: Sequence[int],
                      groups: int = 1, out: Optional[Tensor] = None) -> Tensor:
    """Zero-padded stride-1 convolution computed zone by zone (see :func:`zone_plan`).

    Equal to ``F.conv2d`` / ``F.conv3d`` with the padding the plan was made for, up to
    floating-point summation order.

    Args:
        x: Input, ``(N, C_in, H, W)`` or ``(N, C_in, D, H, W)``.
        weight: ``(C_out, C_in / groups, *kernel)``.
        bias: ``(C_out,)`` or ``None``.
        zones: Plan from :func:`zone_plan` / :func:`skip_plan` for ``x``'s spatial size.
        padding: Per-axis zero padding the plan was made for.
        dilation: Per-axis dilation.
        groups: Conv groups.
        out: Optional tensor (or view) of the output shape to write into; only without
            autograd.

    Returns:
        ``(N, C_out, *out_spatial)``; e.g. x ``(2, 8, 64, 64)`` with a 3x3 kernel, dilation 24
        and padding 24 gives ``(2, C_out, 64, 64)``.
    """
    dilation = tuple(int(d) for d in dilation)
    padding = tuple(int(p) for p in padding)
    if torch.is_autocast_enabled(x.device.type):
        x, weight, bias = under_autocast(x, weight, bias)
        with torch.autocast(x.device.type, enabled=False):
            return conv_skip_padding(x, weight, bias, zones, padding, dilation, groups, out)
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, weight, bias))
    if needs_grad:
        if out is not None:
            raise ValueError('out= is only supported without autograd')
        return _SkipPaddingConv.apply(x, weight, bias, zones, padding, dilation, groups)
    return _forward(x, weight, bias, zones, padding, dilation, groups, out)


def _forward(x: Tensor, weight: Tensor, bias: Optional[Tensor], zones: Tuple[Zone, ...],
             padding: Tuple[int, ...], dilation: Tuple[int, ...], groups: int,
             out: Optional[Tensor]) -> Tensor:
    """Forward by zones, or by the plain conv where that is faster: channels-last inputs
    (oneDNN's channels-last forward skips padding taps by itself) and NCHW inputs with more than
    ZONE_FORWARD_MAX_FRACTION of the taps in bounds (the plain forward costs less per tap)."""
    fmt = _memory_format(x)
    fraction = valid_tap_fraction(x.shape[2:], weight.shape[2:], dilation, padding)
    if fmt != torch.contiguous_format or fraction > ZONE_FORWARD_MAX_FRACTION:
        y = _CONV_FNS[x.dim() - 2](x, weight, bias, 1, padding, dilation, groups)
        return y if out is None else out.copy_(y)
    if out is None:
        out = x.new_empty(_out_shape(x, weight, zones))
    return _run_zones(x, weight, bias, zones, dilation, groups, out)
