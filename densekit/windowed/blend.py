"""Blending of window predictions, slab by slab along the first spatial axis.

Windows arrive with the first spatial axis slowest (image by image). When the windows starting
at row ``a_k`` begin, every row below ``a_k`` is complete: no later window touches it. The
:class:`Blender` then *finalises* those rows (divides by the accumulated weights, and for labels
takes the argmax) and advances its rolling buffers, which are one window deep along that axis.

Sinks decide what is kept: :class:`FullSink` accumulates every class into the full output
(MONAI's result; only the weight count rolls), :class:`LabelSink` accumulates class scores in a
rolling slab and keeps only the labels, :class:`StreamSink` hands each finished slab of the
blended output to a callback (tiled super-resolution writes it out row band by row band).
"""
from __future__ import annotations

import math
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['RowBuffer', 'Blender', 'FullSink', 'LabelSink', 'StreamSink']


class RowBuffer:
    """A ``(channels, rows, *rest)`` window onto rows ``[base, base + rows)`` of a volume."""

    def __init__(self, channels: int, rows: int, rest: Sequence[int], device: torch.device,
                 dtype: torch.dtype) -> None:
        self.buf = torch.zeros((channels, rows, *rest), device=device, dtype=dtype)
        self.base = 0

    def rows(self, r0: int, r1: int) -> Tensor:
        """View of absolute rows ``[r0, r1)``; ``(channels, r1 - r0, *rest)``."""
        if r0 < self.base or r1 - self.base > self.buf.shape[1]:
            raise RuntimeError(f'rows [{r0}, {r1}) are outside the buffer [{self.base}, '
                               f'{self.base + self.buf.shape[1]})')
        return self.buf[:, r0 - self.base:r1 - self.base]

    def advance(self, new_base: int) -> None:
        """Drop rows below ``new_base``; rows kept move to the front, new rows are zero."""
        shift = new_base - self.base
        if shift <= 0:
            return
        total = self.buf.shape[1]
        keep = max(total - shift, 0)
        for j in range(0, keep, shift):  # chunks of <= shift rows never overlap their source
            n = min(shift, keep - j)
            self.buf[:, j:j + n].copy_(self.buf[:, shift + j:shift + j + n])
        self.buf[:, keep:].zero_()
        self.base = new_base

    def reset(self) -> None:
        """Start a new volume at row 0."""
        self.buf.zero_()
        self.base = 0


class _Head:
    """Geometry of one predictor output (it may be at a scaled resolution)."""

    def __init__(self, window_out: Sequence[int], roi: Sequence[int], size: Sequence[int]
                 ) -> None:
        self.window_out = tuple(int(s) for s in window_out)
        self.zoom = None if self.window_out == tuple(roi) else \
            [o / float(r) for o, r in zip(self.window_out, roi)]
        z = self.zoom or [1.0] * len(roi)
        self.size = tuple(int(s * zi) for s, zi in zip(size, z))
        self.depth = min(math.ceil(roi[0] * z[0]) + 1, self.size[0])

    def slices(self, start: Sequence[int], roi: Sequence[int]) -> Tuple[slice, ...]:
        if self.zoom is None:
            return tuple(slice(s, s + r) for s, r in zip(start, roi))
        return tuple(slice(int(s * z), int((s + r) * z))
                     for s, r, z in zip(start, roi, self.zoom))

    def row(self, r: int) -> int:
        return r if self.zoom is None else int(r * self.zoom[0])


class FullSink:
    """Keep the full blended output (``(N, C, *size)``), as MONAI returns it."""

    def setup(self, heads: List[_Head], channels: List[int], weight_channels: List[int],
              batch: int, device: torch.device, dtype: torch.dtype) -> None:  # noqa: D102
        self.out = [torch.zeros((batch, c, *h.size), device=device, dtype=dtype)
                    for h, c in zip(heads, channels)]
        self.count = [RowBuffer(wc, h.depth, h.size[1:], device, dtype)
                      for h, wc in zip(heads, weight_channels)]

    def accumulate(self, h: int, b: int, sl: Tuple[slice, ...], pred: Tensor, w: Tensor
                   ) -> None:  # noqa: D102
        self.out[h][(b, slice(None), *sl)].addcmul_(pred, w)
        self.count[h].rows(sl[0].start, sl[0].stop)[(slice(None), slice(None), *sl[1:])].add_(w)

    def finalize(self, h: int, b: int, r0: int, r1: int) -> None:  # noqa: D102
        if r1 > r0:
            divisor = self.count[h].rows(r0, r1)
            if torch.is_grad_enabled():  # autograd keeps it; the buffer moves on
                divisor = divisor.clone()
            self.out[h][b, :, r0:r1].div_(divisor)
        self.count[h].advance(r1)

    def new_image(self) -> None:  # noqa: D102
        for count in self.count:
            count.reset()

    def results(self) -> List[Tensor]:  # noqa: D102
        return self.out


def _argmax_classes(scores: Tensor, out: Tensor) -> None:
    """``out = scores.argmax(0)`` (first maximum wins) as one pass per class: an argmax over
    the outermost dim of a ``(C, rows, H, W)`` slab is a strided reduction, several times
    slower on CPU."""
    best = scores[0].clone()
    out.zero_()
    mask = torch.empty(best.shape, dtype=torch.bool, device=best.device)
    for c in range(1, scores.shape[0]):
        torch.gt(scores[c], best, out=mask)
        torch.maximum(best, scores[c], out=best)
        out.masked_fill_(mask, c)


class _SlabSink(FullSink):
    """Blend one output in a rolling slab one window deep; subclasses consume finished rows."""

    name = 'streamed blending'

    def setup(self, heads: List[_Head], channels: List[int], weight_channels: List[int],
              batch: int, device: torch.device, dtype: torch.dtype) -> None:  # noqa: D102
        if len(heads) != 1:
            raise ValueError(f'{self.name} needs a predictor with one output tensor, got '
                             f'{len(heads)} outputs')
        head = heads[0]
        self.acc = RowBuffer(channels[0], head.depth, head.size[1:], device, dtype)
        self.count = [RowBuffer(weight_channels[0], head.depth, head.size[1:], device, dtype)]

    def accumulate(self, h: int, b: int, sl: Tuple[slice, ...], pred: Tensor, w: Tensor
                   ) -> None:  # noqa: D102
        rest = (slice(None), slice(None), *sl[1:])
        self.acc.rows(sl[0].start, sl[0].stop)[rest].addcmul_(pred, w)
        self.count[0].rows(sl[0].start, sl[0].stop)[rest].add_(w)

    def consume(self, b: int, r0: int, total: Tensor, weight: Tensor) -> None:
        """Use rows ``[r0, r0 + len)`` of image ``b``: the weighted sums and the weights (views
        of the slab, about to be dropped)."""
        raise NotImplementedError

    def finalize(self, h: int, b: int, r0: int, r1: int) -> None:  # noqa: D102
        if r1 > r0:
            self.consume(b, r0, self.acc.rows(r0, r1), self.count[0].rows(r0, r1))
        self.acc.advance(r1)
        self.count[0].advance(r1)

    def new_image(self) -> None:  # noqa: D102
        self.acc.reset()
        self.count[0].reset()


class LabelSink(_SlabSink):
    """Keep only argmax labels (``(N, *size)``); class scores live in a rolling slab."""

    name = 'sliding_window_labels'

    def setup(self, heads: List[_Head], channels: List[int], weight_channels: List[int],
              batch: int, device: torch.device, dtype: torch.dtype) -> None:  # noqa: D102
        super().setup(heads, channels, weight_channels, batch, device, dtype)
        head = heads[0]
        if head.zoom is not None:
            raise ValueError(f'sliding_window_labels needs outputs at the window size; the '
                             f'predictor returned windows of {head.window_out}')
        label_dtype = torch.uint8 if channels[0] <= 256 else torch.int32
        self.labels = torch.zeros((batch, *head.size), device=device, dtype=label_dtype)

    def consume(self, b: int, r0: int, total: Tensor, weight: Tensor) -> None:  # noqa: D102
        _argmax_classes(total.div_(weight), self.labels[b, r0:r0 + total.shape[1]])

    def results(self) -> List[Tensor]:  # noqa: D102
        return [self.labels]


class StreamSink(_SlabSink):
    """Hand each finished slab to ``emit(image, first_row, rows)``; keep nothing else.

    The output (any channel count, any integer output scale per axis) lives in a rolling slab
    one window deep, so memory does not grow with the image. ``rows`` is a fresh tensor.
    """

    def __init__(self, emit: Callable[[int, int, Tensor], None]) -> None:
        self.emit = emit

    def consume(self, b: int, r0: int, total: Tensor, weight: Tensor) -> None:  # noqa: D102
        self.emit(b, r0, total / weight)

    def results(self) -> List[Tensor]:  # noqa: D102
        return []


class Blender:
    """Accumulate window predictions into a sink, finalising slabs as they complete.

    Args:
        sink: :class:`FullSink`, :class:`LabelSink` or :class:`StreamSink`.
        batch: Number of images ``N``.
        size: Padded spatial size of the images.
        roi: Window size.
        axis0_starts: Window starts along the first spatial axis.
        device: Device of the accumulators and results.
        dtype: Accumulation dtype (the input's).
    """

    def __init__(self, sink: FullSink, batch: int, size: Sequence[int], roi: Sequence[int],
                 axis0_starts: Sequence[int], device: torch.device, dtype: torch.dtype) -> None:
        self.sink, self.batch, self.size, self.roi = sink, batch, tuple(size), tuple(roi)
        self.starts = list(axis0_starts)
        self.device, self.dtype = device, dtype
        self.heads: Optional[List[_Head]] = None
        self.group: Optional[Tuple[int, int]] = None
        self.weights: Optional[List[Tensor]] = None

    def _setup(self, outs: Sequence[Tensor], w: Tensor) -> None:
        self.heads = [_Head(o.shape[2:], self.roi, self.size) for o in outs]
        wc = [self._head_weights(w, h).shape[1] for h in self.heads]
        self.sink.setup(self.heads, [o.shape[1] for o in outs], wc, self.batch, self.device,
                        self.dtype)

    def _head_weights(self, w: Tensor, head: _Head) -> Tensor:
        w = w.to(device=self.device, dtype=self.dtype)
        while w.dim() < len(self.roi) + 2:
            w = w.unsqueeze(0)
        if tuple(w.shape[2:]) != head.window_out:
            w = F.interpolate(w, size=head.window_out, mode='nearest-exact')
        return w

    def _enter(self, b: int, start0: int) -> None:
        k = self.starts.index(start0)
        if self.group == (b, k):
            return
        if self.group is not None and self.group[0] != b:
            self._finish_image(self.group[0])
        if self.group is None or self.group[0] != b:
            self.sink.new_image()
        for h, head in enumerate(self.heads):
            # rows below this start are complete: no later window of this image reaches them
            self.sink.finalize(h, b, self.sink.count[h].base, head.row(start0))
        self.group = (b, k)

    def _finish_image(self, b: int) -> None:
        for h, head in enumerate(self.heads):
            self.sink.finalize(h, b, self.sink.count[h].base, head.size[0])

    def add(self, windows: Sequence[Tuple[int, Tuple[int, ...]]], outs: Sequence[Tensor],
            w: Tensor) -> None:
        """Blend one batch: ``windows`` are ``(image index, start)``; ``outs`` the predictor's
        outputs ``(n, C, *window_out)``; ``w`` the window weights (shared or one per window)."""
        n = len(windows)
        for o in outs:
            if not isinstance(o, Tensor) or o.dim() != len(self.roi) + 2 or o.shape[0] != n:
                got = tuple(o.shape) if isinstance(o, Tensor) else type(o).__name__
                raise ValueError(f'predictor output must be (n={n}, C, *window) with '
                                 f'{len(self.roi)} spatial dims, got {got}')
        if self.heads is None:
            self._setup(outs, w)
        elif len(outs) != len(self.heads) or any(
                tuple(o.shape[2:]) != head.window_out for o, head in zip(outs, self.heads)):
            raise ValueError(f'predictor returned windows of '
                             f'{[tuple(o.shape[2:]) for o in outs]}; its first windows were '
                             f'{[head.window_out for head in self.heads]}')
        weights = [self._head_weights(w, head) for head in self.heads]
        for i, (b, start) in enumerate(windows):
            self._enter(b, start[0])
            for h, (head, o) in enumerate(zip(self.heads, outs)):
                wi = weights[h][i if weights[h].shape[0] == n and n > 1 else 0]
                self.sink.accumulate(h, b, head.slices(start, self.roi),
                                     o[i].to(device=self.device), wi)

    def finish(self) -> List[Tensor]:
        """Finalise the last image and return the sink's results."""
        if self.heads is None:
            raise RuntimeError('no window was predicted')
        self._finish_image(self.group[0])
        return self.sink.results()
