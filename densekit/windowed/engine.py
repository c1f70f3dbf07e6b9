"""Sliding-window inference: MONAI's signature and results, less memory, a faster network run.

:func:`sliding_window_inference` takes the arguments of ``monai.inferers.
sliding_window_inference`` (a MONAI user switches by changing the import) and returns the same
blended output (within float rounding). Differences, all invisible in the result:

* the input is never modified, not even by a predictor that works in place (every window batch
  is a fresh copy; MONAI hands the predictor a view of the input when ``sw_batch_size == 1``);
* no full-volume weight-count map: windows are visited with the first spatial axis slowest, the
  normalising weights are accumulated in a rolling buffer one window-depth deep and each slab of
  rows is normalised as soon as no later window can touch it;
* the importance map is computed once and cached;
* predictions are blended with one fused multiply-add into the output;
* the network runs under ``torch.inference_mode`` (unless the input requires grad) and through
  :func:`~densekit.accel.volumetric.fast_inference` (oneDNN for all 3D convs, faster
  instance-norm statistics; same results within rounding);
* on CPU, for a predictor that provably treats windows independently
  (:func:`~densekit.windowed.batching.independent_samples`: stock per-sample torch
  layers and densekit's own networks, in eval mode), window batches are run either as one call
  or one window per call, whichever measures faster on the first batches (``micro_batch``);
  any other predictor gets MONAI's calls exactly, unless the caller opts in.

A MONAI ``MetaTensor`` input (batched, as a MONAI ``DataLoader`` yields it) is read as a plain
tensor and the output is a ``MetaTensor`` carrying the input's metadata, as MONAI returns it.

:func:`sliding_window_labels` is the usual case of segmentation: it returns the argmax labels
without ever holding a full-volume float buffer per class; each slab is blended, normalised and
reduced to labels as soon as it is complete, so peak memory is about one window-depth slab of
class scores.
"""
from __future__ import annotations

import contextlib
import itertools
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from densekit.errors import positive_int, positive_ints
from densekit.windowed.batching import CallPlanner, independent_samples
from densekit.windowed.blend import Blender, FullSink, LabelSink, StreamSink
from densekit.windowed.grid import (
    BLEND_MODES,
    WindowLayout,
    fall_back_roi,
    importance_map,
    iter_windows,
)

__all__ = ['sliding_window_inference', 'sliding_window_labels', 'stream_windows', 'WindowLayout']

_PAD_MODES = ('constant', 'reflect', 'replicate', 'circular')


def _plain(inputs: Any) -> Tuple[Any, Callable[[Tensor], Tensor]]:
    """A tensor subclass (a MONAI ``MetaTensor``) as a plain tensor, and the function that
    gives an output the input's type back (a ``MetaTensor`` with a copy of the input's
    metadata); plain tensors and non-tensors pass through."""
    if not isinstance(inputs, Tensor) or type(inputs) is Tensor:
        return inputs, lambda out: out
    if hasattr(inputs, 'copy_meta_from') and hasattr(inputs, 'as_tensor'):  # MONAI MetaTensor
        template = type(inputs)([]).copy_meta_from(inputs, copy_attr=False)

        def rewrap(out: Tensor) -> Tensor:
            wrapped = type(inputs)(out)
            return wrapped.copy_meta_from(template, copy_attr=False)
        return inputs.as_tensor(), rewrap
    kind = type(inputs)
    return inputs.as_subclass(Tensor), lambda out: out.as_subclass(kind)


_INTEGER_PIXELS = (torch.uint8, torch.int16, torch.uint16)


def _check_args(inputs: Any, sw_batch_size: Any, overlap: Any, mode: Any,
                padding_mode: Any, integer_ok: bool = False
                ) -> Tuple[Tuple[float, ...], str, str]:
    if not isinstance(inputs, Tensor):
        raise TypeError(f'inputs must be a torch.Tensor (N, C, *spatial), got '
                        f'{type(inputs).__name__}')
    if inputs.dim() < 3:
        raise ValueError(f'inputs must be (N, C, *spatial) with at least one spatial dim, got '
                         f'shape {tuple(inputs.shape)}')
    if not inputs.is_floating_point() and not (integer_ok and inputs.dtype in _INTEGER_PIXELS):
        kinds = 'a floating point or uint8/int16/uint16 tensor' if integer_ok \
            else 'a floating point tensor'
        raise TypeError(f'inputs must be {kinds}, got dtype {inputs.dtype}')
    positive_int(sw_batch_size, 'sw_batch_size')
    n = inputs.dim() - 2
    overlaps = (overlap,) * n if isinstance(overlap, (int, float)) else tuple(overlap)
    if len(overlaps) != n:
        raise ValueError(f'overlap={overlap!r} needs one value or {n} per-axis values')
    for value in overlaps:
        if not 0 <= float(value) < 1:
            raise ValueError(f'overlap must be >= 0 and < 1, got {overlap!r}')
    mode = str(getattr(mode, 'value', mode)).lower()
    if mode not in BLEND_MODES:
        raise ValueError(f'mode must be one of {BLEND_MODES}, got {mode!r}')
    padding_mode = str(getattr(padding_mode, 'value', padding_mode)).lower()
    if padding_mode not in _PAD_MODES:
        raise ValueError(f'padding_mode must be one of {_PAD_MODES}, got {padding_mode!r}')
    return tuple(float(v) for v in overlaps), mode, padding_mode


def _pad_to_roi(inputs: Tensor, roi: Sequence[int], padding_mode: str, cval: float
                ) -> Tuple[Tensor, List[int]]:
    """Pad axes shorter than the window (half before, half after) as MONAI does."""
    pad: List[int] = []
    for k in range(inputs.dim() - 1, 1, -1):  # F.pad order: last axis first
        diff = max(roi[k - 2] - inputs.shape[k], 0)
        pad += [diff // 2, diff - diff // 2]
    if any(pad):
        kwargs = {'value': cval} if padding_mode == 'constant' else {}
        inputs = F.pad(inputs, pad, mode=padding_mode, **kwargs)
    return inputs, pad


def _unpad_slices(pad: List[int], image_size: Sequence[int], out_size: Sequence[int],
                  roi: Sequence[int]) -> Tuple[slice, ...]:
    n = len(image_size)
    slices = []
    for axis in range(n):
        before = pad[2 * (n - 1 - axis)]
        zoom = out_size[axis] / roi[axis]
        slices.append(slice(int(round(before * zoom)),
                            int(round((before + image_size[axis]) * zoom))))
    return tuple(slices)


def _run(inputs: Tensor, roi_size: Any, sw_batch_size: int, predictor: Callable,
         overlap: Any, mode: Any, sigma_scale: Any, padding_mode: Any, cval: float,
         sw_device: Any, device: Any, progress: bool, roi_weight_map: Optional[Tensor],
         process_fn: Optional[Callable], with_coord: bool, labels: bool, fast: bool,
         micro_batch: Union[int, str, None], args: Tuple, kwargs: Dict,
         margin: Union[int, Sequence[int]] = 0, layout: Optional[WindowLayout] = None,
         sink: Optional[FullSink] = None, dtype: Optional[torch.dtype] = None) -> Any:
    inputs, rewrap = _plain(inputs)
    overlaps, mode, padding_mode = _check_args(inputs, sw_batch_size, overlap, mode, padding_mode,
                                               integer_ok=labels or dtype is not None)
    if dtype is None:  # integer pixels (a decoded image kept as it is) blend in float32
        dtype = inputs.dtype if inputs.is_floating_point() else torch.float32
    image_size = tuple(inputs.shape[2:])
    roi = fall_back_roi(roi_size, image_size)
    device = torch.device(device) if device is not None else inputs.device
    sw_device = torch.device(sw_device) if sw_device is not None else inputs.device
    condition = _plain(kwargs.pop('condition', None))[0]
    grad_ok = inputs.requires_grad or (condition is not None and condition.requires_grad)
    if grad_ok and labels:
        raise ValueError('sliding_window_labels got inputs that require grad; labels are not '
                         'differentiable: pass inputs.detach()')
    padded, pad = _pad_to_roi(inputs, roi, padding_mode, cval)
    if condition is not None:
        condition, _ = _pad_to_roi(condition, roi, padding_mode, cval)
    size = tuple(padded.shape[2:])
    if layout is not None:
        starts = [list(axis) for axis in layout.starts]
        windows = itertools.product(*starts)
    else:
        starts, windows = iter_windows(size, roi, overlaps)
    if roi_weight_map is not None:
        weights = torch.as_tensor(roi_weight_map)
        if tuple(weights.shape[-len(roi):]) != roi:
            raise ValueError(f'roi_weight_map has shape {tuple(weights.shape)}; expected the '
                             f'window size {roi}')
        weights = weights.to(device=sw_device, dtype=dtype)
    else:
        weights = importance_map(roi, mode, sigma_scale, sw_device, dtype)
    if sink is None:
        sink = LabelSink() if labels else FullSink()
    blender = Blender(sink, batch=inputs.shape[0], size=size, roi=roi, axis0_starts=starts[0],
                      device=device, dtype=dtype)
    windows = list(windows)
    margins = _check_margin(margin, roi, size, windows)
    all_windows = [(b, start) for b in range(inputs.shape[0]) for start in windows]
    bar = None
    if callable(progress):  # a caller's counter, e.g. a tqdm bar's ``update``
        update: Optional[Callable[[int], object]] = progress
    elif progress:
        from tqdm import tqdm
        bar = tqdm(total=len(all_windows), desc='sliding window', unit='window', leave=False)
        update = bar.update
    else:
        update = None
    from densekit.accel.volumetric import fast_inference

    def predicting() -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        if not grad_ok:  # the network runs without autograd; results stay normal tensors
            stack.enter_context(torch.inference_mode())
            if fast:
                stack.enter_context(fast_inference())
        return stack

    if micro_batch in ('auto', 'measure'):
        planner = CallPlanner(sw_batch_size, None, adaptive=sw_device.type == 'cpu'
                              and process_fn is None and (micro_batch == 'measure'
                                                          or independent_samples(predictor)))
    else:
        planner = CallPlanner(sw_batch_size, micro_batch, adaptive=False)
    with contextlib.nullcontext() if grad_ok else torch.no_grad():
        for index, first in enumerate(range(0, len(all_windows), sw_batch_size)):
            started = time.perf_counter()
            step = planner.step(index)
            batch = all_windows[first:first + sw_batch_size]
            spatial = [tuple(slice(s, s + r) for s, r in zip(start, roi)) for _, start in batch]
            win = torch.cat([padded[(slice(b, b + 1), slice(None), *sl)]
                             for (b, _), sl in zip(batch, spatial)]).to(sw_device)
            if condition is not None:
                full_condition = torch.cat(
                    [condition[(slice(b, b + 1), slice(None), *sl)]
                     for (b, _), sl in zip(batch, spatial)]).to(sw_device)
                kwargs['condition'] = full_condition
            for i in range(0, len(batch), step):
                sub, sub_win = batch[i:i + step], win[i:i + step]
                if 'condition' in kwargs and step < len(batch):
                    kwargs['condition'] = full_condition[i:i + step]
                with predicting():
                    if with_coord:
                        coords = [[slice(b, b + 1), slice(None), *sl]
                                  for (b, _), sl in zip(sub, spatial[i:i + step])]
                        out = predictor(sub_win, coords, *args, **kwargs)
                    else:
                        out = predictor(sub_win, *args, **kwargs)
                keys, outs = _flatten(out)
                w = weights
                if layout is not None:
                    w = torch.stack([layout.weights(start) for _, start in sub])[:, None]
                elif any(margins):
                    w = torch.stack([_trimmed(weights, start, roi, size, margins)
                                     for _, start in sub])[:, None]
                if process_fn is not None:
                    outs, w = process_fn(outs, sub_win, weights)
                    outs = tuple(outs) if isinstance(outs, (list, tuple)) else (outs,)
                blender.add(sub, outs, w)
            planner.record(index, time.perf_counter() - started, len(batch))
            if update is not None:
                update(len(batch))
        results = blender.finish()
    if bar is not None:
        bar.close()
    if isinstance(sink, StreamSink):
        return None
    if any(pad):
        results = [r[(slice(None),) * (r.dim() - len(size)) +
                     _unpad_slices(pad, image_size, r.shape[-len(size):], roi)]
                   for r in results]
    results = [rewrap(r) for r in results]
    if labels:
        return results[0]
    if keys is not None:
        return dict(zip(keys, results))
    return results[0] if len(results) == 1 else tuple(results)


def _check_margin(margin: Union[int, Sequence[int]], roi: Sequence[int], size: Sequence[int],
                  windows: Sequence[Sequence[int]]) -> Tuple[int, ...]:
    """Per-axis margins; each must leave every pixel inside some window's kept part."""
    margins = (margin,) * len(roi) if isinstance(margin, int) else tuple(margin)
    if len(margins) != len(roi) or not all(isinstance(m, int) and m >= 0 for m in margins):
        raise ValueError(f'margin must be a non-negative int or one per axis ({len(roi)}), got '
                         f'{margin!r}')
    for axis, m in enumerate(margins):
        starts = sorted({w[axis] for w in windows})
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        if m and gaps and max(gaps) > roi[axis] - 2 * m:
            raise ValueError(f'margin {m} on axis {axis} needs an overlap of at least {2 * m} '
                             f'pixels between windows, got {roi[axis] - max(gaps)}; raise the '
                             'overlap or lower the margin')
    return margins


def _trimmed(weights: Tensor, start: Sequence[int], roi: Sequence[int], size: Sequence[int],
             margins: Sequence[int]) -> Tensor:
    """``weights`` with the window's inner borders (those not on the image border) zeroed."""
    w = weights.clone()
    for axis, m in enumerate(margins):
        if not m:
            continue
        view = w.movedim(axis, 0)
        if start[axis] > 0:
            view[:m] = 0
        if start[axis] + roi[axis] < size[axis]:
            view[-m:] = 0
    return w


def _flatten(out: Any) -> Tuple[Optional[List], Tuple[Tensor, ...]]:
    if isinstance(out, Tensor):
        return None, (out,)
    if isinstance(out, dict):
        keys = sorted(out)
        return keys, tuple(out[k] for k in keys)
    if isinstance(out, (list, tuple)) and all(isinstance(o, Tensor) for o in out) and out:
        return None, tuple(out)
    raise TypeError(f'predictor must return a tensor, a sequence of tensors or a dict of '
                    f'tensors, got {type(out).__name__}')


def sliding_window_inference(
        inputs: Tensor, roi_size: Union[Sequence[int], int], sw_batch_size: int,
        predictor: Callable[..., Any], overlap: Union[Sequence[float], float] = 0.25,
        mode: str = 'constant', sigma_scale: Union[Sequence[float], float] = 0.125,
        padding_mode: str = 'constant', cval: float = 0.0,
        sw_device: Union[torch.device, str, None] = None,
        device: Union[torch.device, str, None] = None, progress: bool = False,
        roi_weight_map: Optional[Tensor] = None, process_fn: Optional[Callable] = None,
        buffer_steps: Optional[int] = None, buffer_dim: int = -1, with_coord: bool = False,
        *args: Any, fast: bool = True, micro_batch: Union[int, str, None] = 'auto',
        **kwargs: Any) -> Any:
    """Blend ``predictor`` over overlapping windows of ``inputs`` (MONAI-compatible).

    Args:
        inputs: ``(N, C, *spatial)``, e.g. ``(1, 1, 128, 128, 128)`` NCDHW; floating point.
        roi_size: Window size (one int, or per axis; ``<= 0`` / ``None`` = the full axis).
        sw_batch_size: Windows per predictor call.
        predictor: ``predictor(windows, *args, **kwargs)`` -> tensor, tuple or dict of tensors
            ``(n, C_out, *out_window)``; outputs may have a different (scaled) resolution.
        overlap: Fraction of overlap between windows, in ``[0, 1)``, one or per axis.
        mode: ``'constant'`` or ``'gaussian'`` blending.
        sigma_scale: Gaussian sigma as a fraction of the window size.
        padding_mode: How inputs smaller than the window are padded (``F.pad`` modes).
        cval: Value for constant padding.
        sw_device: Device the windows are sent to (default: the input's).
        device: Device of the blended output (default: the input's).
        progress: Show a progress bar over windows.
        roi_weight_map: Precomputed window weights (replaces the importance map).
        process_fn: ``process_fn(outputs, windows, weights) -> (outputs, weights)``, applied to
            every window batch. Unlike MONAI, each window is normalised by its own returned
            weights (MONAI reuses the first batch's weights for the normalisation map).
        buffer_steps: Accepted for compatibility; densekit always buffers slab by slab.
        buffer_dim: Accepted for compatibility.
        with_coord: Call ``predictor(windows, coords, ...)`` with MONAI's slice lists.
        *args: Passed to ``predictor``.
        fast: Run the predictor under :func:`fast_inference` (keyword only; default True).
        micro_batch: Windows per network call within a window batch (keyword only): an int,
            None (= ``sw_batch_size``, MONAI's calls), ``'auto'`` (default) or ``'measure'``.
            ``'auto'``: on CPU, for a predictor that provably treats windows independently
            (:func:`~densekit.windowed.batching.independent_samples`), time full and
            single-window calls on the first batches and keep the faster; for any other
            predictor MONAI's calls. ``'measure'``: the same timing for any predictor (the
            caller vouches that its windows are independent).
        **kwargs: Passed to ``predictor`` (``condition`` is windowed like the input, as MONAI).

    Returns:
        Same structure as the predictor's output, each ``(N, C_out, *spatial_out)`` on
        ``device``; of the input's type (a MONAI ``MetaTensor`` input gives ``MetaTensor``
        outputs with a copy of its metadata, as MONAI's function does).

    Raises:
        TypeError: non-tensor or integer inputs, a bad ``roi_size`` or predictor output.
        ValueError: bad ``sw_batch_size``, ``overlap``, ``mode``, ``padding_mode`` or
            ``roi_weight_map``.

    Example:
        >>> net = torch.nn.Conv3d(1, 2, 3, padding=1)
        >>> out = sliding_window_inference(torch.rand(1, 1, 40, 48, 56), 32, 2, net,
        ...                                overlap=0.5, mode='gaussian')
        >>> out.shape
        torch.Size([1, 2, 40, 48, 56])
    """
    del buffer_steps, buffer_dim
    return _run(inputs, roi_size, sw_batch_size, predictor, overlap, mode, sigma_scale,
                padding_mode, cval, sw_device, device, progress, roi_weight_map, process_fn,
                with_coord, False, fast, micro_batch, args, dict(kwargs))


def sliding_window_labels(
        inputs: Tensor, roi_size: Union[Sequence[int], int], sw_batch_size: int,
        predictor: Callable[..., Any], overlap: Union[Sequence[float], float] = 0.25,
        mode: str = 'gaussian', sigma_scale: Union[Sequence[float], float] = 0.125,
        padding_mode: str = 'constant', cval: float = 0.0,
        sw_device: Union[torch.device, str, None] = None,
        device: Union[torch.device, str, None] = None, progress: bool = False,
        roi_weight_map: Optional[Tensor] = None, fast: bool = True,
        micro_batch: Union[int, str, None] = 'auto', margin: Union[int, Sequence[int]] = 0,
        **kwargs: Any) -> Tensor:
    """Argmax labels of the blended prediction, computed slab by slab.

    Gives ``sliding_window_inference(...).argmax(1)`` without a full-volume float buffer per
    class: each slab of rows is normalised and reduced to labels as soon as it is complete.
    The predictor must return one tensor ``(n, num_classes, *window)`` at the input resolution.
    ``inputs`` may also hold integer pixels (uint8, int16, uint16: a decoded image kept as it
    is); the predictor then gets integer windows and converts them itself, and the blending
    runs in float32, so no float copy of the whole input is ever made.

    Args:
        inputs: ``(N, C, *spatial)``, e.g. ``(1, 1, 256, 256, 256)``.
        roi_size, sw_batch_size, predictor, overlap, mode, sigma_scale, padding_mode, cval,
        sw_device, device, progress, roi_weight_map, fast, micro_batch: As
            :func:`sliding_window_inference`
            (``mode`` defaults to ``'gaussian'`` here).
        margin: Pixels (an int, or one per axis) at each window's inner borders that get no
            weight: borders on the image border keep theirs. With a margin at least the
            network's receptive-field radius (and an overlap of at least twice the margin),
            every pixel is blended only from windows that saw all of its context, so the
            labels are the whole-input labels.
        **kwargs: Passed to ``predictor``.

    Returns:
        ``(N, *spatial)`` labels: ``torch.uint8`` for up to 256 classes, else ``torch.int32``;
        e.g. ``(1, 256, 256, 256)``.

    Example:
        >>> net = torch.nn.Conv3d(1, 3, 1)
        >>> sliding_window_labels(torch.rand(1, 1, 20, 24, 28), 16, 1, net).shape
        torch.Size([1, 20, 24, 28])
    """
    return _run(inputs, roi_size, sw_batch_size, predictor, overlap, mode, sigma_scale,
                padding_mode, cval, sw_device, device, progress, roi_weight_map, None, False,
                True, fast, micro_batch, (), dict(kwargs), margin)


def stream_windows(inputs: Tensor, roi: Sequence[int], predictor: Callable[[Tensor], Tensor],
                   layout: WindowLayout, emit: Callable[[int, int, Tensor], None], *,
                   sw_device: Union[torch.device, str, None] = None,
                   device: Union[torch.device, str] = 'cpu',
                   dtype: torch.dtype = torch.float32,
                   progress: Union[bool, Callable[[int], object]] = False) -> None:
    """Blend ``predictor`` over the windows of ``layout`` and stream the result slab by slab.

    The blended output is never held whole: as soon as no later window reaches a slab of rows
    (first spatial axis), it is normalised and handed to ``emit(image, first_row, rows)`` with
    ``rows`` of shape ``(C_out, r, *rest)``, top to bottom, image by image. Working memory is
    one window-depth slab of the output. Outputs may be at an integer multiple of the window
    size per axis (super-resolution); rows are then output rows.

    Args:
        inputs: ``(N, C, *spatial)``, float or integer pixels (the predictor converts them).
        roi: Window size per spatial axis (at most the input's size).
        predictor: Maps ``(1, C, *roi)`` windows to ``(1, C_out, *out_window)``.
        layout: Window starts and per-window weights (see :class:`WindowLayout`).
        emit: Receives each finished slab.
        sw_device: Where windows are sent (default: the input's device).
        device: Where the output is blended.
        dtype: Accumulation dtype.
        progress: ``True`` for a bar, or a callable counting windows.

    Example:
        >>> import torch
        >>> layout = WindowLayout(((0, 6), (0,)), lambda start: torch.ones(8, 10))
        >>> slabs = []
        >>> stream_windows(torch.rand(1, 1, 14, 10), (8, 10), lambda w: w * 2, layout,
        ...                lambda b, row, rows: slabs.append((row, rows.shape[1])))
        >>> slabs
        [(0, 6), (6, 8)]
    """
    if not isinstance(inputs, Tensor) or inputs.dim() < 3:
        raise TypeError(f'inputs must be a torch.Tensor (N, C, *spatial), got '
                        f'{getattr(inputs, "shape", type(inputs).__name__)}')
    if not isinstance(layout, WindowLayout):
        raise TypeError(f'layout must be a WindowLayout, got {type(layout).__name__}')
    size = tuple(inputs.shape[2:])
    roi = tuple(positive_ints(list(roi) if isinstance(roi, tuple) else roi, 'roi'))
    if len(roi) != len(size) or len(layout.starts) != len(size):
        raise ValueError(f'roi={roi} and layout.starts need one entry per spatial axis of '
                         f'inputs {size}')
    for axis, (axis_starts, r, n) in enumerate(zip(layout.starts, roi, size)):
        if not 0 < r <= n:
            raise ValueError(f'roi[{axis}]={r} must be in [1, {n}] (the input size)')
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in axis_starts) \
                or list(axis_starts) != sorted(set(axis_starts)) or not axis_starts \
                or axis_starts[0] < 0 or axis_starts[-1] + r > n:
            raise ValueError(f'layout.starts[{axis}]={tuple(axis_starts)} must be ascending, '
                             f'distinct and keep windows of {r} inside [0, {n})')
    _run(inputs, roi, 1, predictor, 0.0, 'constant', 0.125, 'constant', 0.0, sw_device, device,
         progress, None, None, False, False, False, None, (), {}, layout=layout,
         sink=StreamSink(emit), dtype=dtype)
