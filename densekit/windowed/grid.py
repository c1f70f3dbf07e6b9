"""Window geometry and blend weights of the windowed engine, in any number of dimensions.

Two layouts:

* **MONAI's grid** (:func:`iter_windows`, :func:`importance_map`), used by
  ``sliding_window_inference`` / ``sliding_window_labels``;
* **cross-faded tiles** (:func:`tile_spans`, :func:`crossfade_weights`,
  :func:`crossfade_layout`), used by tiled super-resolution: evenly spread tiles, each
  consecutive pair sharing at least ``overlap`` pixels; inside a shared band of width ``O``
  each tile's outer quarter (``O/4``) gets no weight and the middle half is cross-faded
  linearly, so the weights of neighbours sum to 1 and every kept pixel lies at least ``O/4``
  input pixels from its tile's cut edge. The output of such a layout equals the whole-input
  output once ``overlap / 4`` covers the network's receptive-field radius.

MONAI's grid: along each axis the step is ``int(roi * (1 - overlap))`` (at least
1, or the full size when the window spans the axis), windows start at ``0, step, 2 * step, ...``
until one reaches the end, and the last start is moved back so that window ends exactly at the
border. Windows are visited with the first spatial axis slowest (``itertools.product`` order),
so a window batch holds the same windows as MONAI's.

The Gaussian importance map is the separable product of 1D Gaussians with
``sigma = sigma_scale * roi`` centred on the window centre, clamped below at
``max(min(map), 1e-3)`` (the clamp keeps window corners from getting zero weight). Maps are
computed once per (size, mode, sigma, device, dtype) and cached; callers must treat a cached map
as read-only.
"""
from __future__ import annotations

import functools
import itertools
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Iterator, List, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from densekit.errors import positive_int

__all__ = ['fall_back_roi', 'scan_intervals', 'window_starts', 'iter_windows', 'importance_map',
           'BLEND_MODES', 'WindowLayout', 'check_tiling', 'tile_spans', 'crossfade_weights',
           'crossfade_layout']

Span = Tuple[int, int]

BLEND_MODES = ('constant', 'gaussian')


def _check_sizes(value: Sequence[int], argname: str) -> Tuple[int, ...]:
    out = []
    for item in value:
        if not isinstance(item, int) or isinstance(item, bool) or item < 1:
            raise ValueError(f'{argname} must hold positive ints, got {tuple(value)!r}')
        out.append(int(item))
    return tuple(out)


def _roi_item(value: object, roi_size: object) -> int:
    if isinstance(value, (Tensor, np.ndarray)) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not float(value).is_integer():
        raise TypeError(f'roi_size must be an int or a sequence of ints, got {roi_size!r}')
    return int(value)


def fall_back_roi(roi_size: Union[int, Sequence[int]], image_size: Sequence[int]
                  ) -> Tuple[int, ...]:
    """Per-axis window size; an int applies to every axis, ``None`` / ``<= 0`` take the image's.

    ``roi_size`` may be a numpy array or a 1-D tensor, as MONAI accepts.

    Example:
        >>> fall_back_roi((32, -1, 16), (40, 50, 60))
        (32, 50, 16)
        >>> fall_back_roi(np.array([8, 8]), (20, 30))
        (8, 8)
    """
    n = len(image_size)
    if isinstance(roi_size, (Tensor, np.ndarray)) and roi_size.ndim == 0:
        roi_size = roi_size.item()
    if isinstance(roi_size, numbers.Integral) and not isinstance(roi_size, bool):
        items: List = [int(roi_size)] * n
    elif isinstance(roi_size, (tuple, list)) or (isinstance(roi_size, (Tensor, np.ndarray))
                                                 and roi_size.ndim == 1):
        items = [None if v is None else _roi_item(v, roi_size) for v in roi_size]
        if len(items) != n:
            raise ValueError(f'roi_size={tuple(items)!r} has {len(items)} items, so inputs must '
                             f'have {len(items) + 2} dimensions (N, C, {len(items)} spatial); '
                             f'got {n} spatial dims')
    else:
        raise TypeError(f'roi_size must be an int or a sequence of ints, got {roi_size!r}')
    return tuple(int(size) if (r is None or r <= 0) else int(r)
                 for r, size in zip(items, image_size))


def scan_intervals(image_size: Sequence[int], roi_size: Sequence[int],
                   overlap: Sequence[float]) -> Tuple[int, ...]:
    """Step between window starts along each axis.

    Example:
        >>> scan_intervals((128, 128, 128), (64, 64, 64), (0.25, 0.25, 0.25))
        (48, 48, 48)
    """
    steps = []
    for size, roi, ov in zip(image_size, roi_size, overlap):
        if roi == size:
            steps.append(int(roi))
        else:
            steps.append(max(int(roi * (1 - ov)), 1))
    return tuple(steps)


def window_starts(size: int, roi: int, step: int) -> List[int]:
    """Window start positions along one axis (``roi <= size``).

    Example:
        >>> window_starts(128, 64, 48)
        [0, 48, 64]
    """
    roi = min(roi, size)
    count = max(math.ceil(size / step), 1)
    num = next((d + 1 for d in range(count) if d * step + roi >= size), 1)
    return [i * step - max(i * step + roi - size, 0) for i in range(num)]


def iter_windows(image_size: Sequence[int], roi_size: Sequence[int],
                 overlap: Sequence[float]) -> Tuple[List[List[int]], Iterator[Tuple[int, ...]]]:
    """Per-axis start lists and an iterator over window start tuples (first axis slowest)."""
    steps = scan_intervals(image_size, roi_size, overlap)
    starts = [window_starts(s, r, st) for s, r, st in zip(image_size, roi_size, steps)]
    return starts, itertools.product(*starts)


@functools.lru_cache(maxsize=16)
def _cached_map(size: Tuple[int, ...], mode: str, sigma_scale: Tuple[float, ...], device: str,
                dtype: torch.dtype) -> Tensor:
    dev = torch.device(device)
    if mode == 'constant':
        weights = torch.ones(size, device=dev, dtype=torch.float32)
    else:
        weights = None
        for axis, (n, s) in enumerate(zip(size, sigma_scale)):
            sigma = n * s
            x = torch.arange(-(n - 1) / 2.0, (n - 1) / 2.0 + 1, dtype=torch.float32, device=dev)
            g = torch.exp(x ** 2 / (-2 * sigma ** 2))
            weights = g if axis == 0 else weights.unsqueeze(-1) * g[(None,) * axis]
    floor = max(float(weights.min()), 1e-3)
    return weights.clamp_(min=floor).to(dtype)


def importance_map(size: Sequence[int], mode: str = 'constant',
                   sigma_scale: Union[float, Sequence[float]] = 0.125,
                   device: Union[str, torch.device] = 'cpu',
                   dtype: torch.dtype = torch.float32) -> Tensor:
    """Blending weights of one window, shape ``size`` (e.g. ``(D, H, W)``); cached, read-only.

    Args:
        size: Window size per spatial axis.
        mode: ``'constant'`` (all ones) or ``'gaussian'``.
        sigma_scale: Gaussian sigma as a fraction of the window size (one value or per axis).
        device: Where the map lives.
        dtype: Its dtype.

    Raises:
        ValueError: unknown mode, bad sizes or a non-positive sigma scale.

    Example:
        >>> w = importance_map((64, 64, 64), 'gaussian')
        >>> w.shape, round(float(w.max()), 3), round(float(w.min()), 3)
        (torch.Size([64, 64, 64]), 0.994, 0.001)
    """
    size = _check_sizes(size, 'size')
    mode = str(getattr(mode, 'value', mode)).lower()
    if mode not in BLEND_MODES:
        raise ValueError(f'mode must be one of {BLEND_MODES}, got {mode!r}')
    if isinstance(sigma_scale, (int, float)):
        sigmas = (float(sigma_scale),) * len(size)
    else:
        sigmas = tuple(float(s) for s in sigma_scale)
        if len(sigmas) != len(size):
            raise ValueError(f'sigma_scale={sigma_scale!r} needs one value per axis of '
                             f'size={size!r}')
    if mode == 'gaussian' and any(s <= 0 for s in sigmas):
        raise ValueError(f'sigma_scale must be > 0, got {sigma_scale!r}')
    return _cached_map(size, mode, sigmas, str(torch.device(device)), dtype)


@dataclass(frozen=True)
class WindowLayout:
    """Windows placed by the caller instead of MONAI's grid.

    Attributes:
        starts: Window starts per spatial axis, ascending (every combination is a window).
        weights: ``weights(start)`` gives the blend weights of the window starting at
            ``start``, shaped like the predictor's output window (e.g. at the output
            resolution of a super-resolution network), so weights can depend on where the
            window lies (a cross-fade has no fade on the image border).
    """

    starts: Tuple[Tuple[int, ...], ...]
    weights: Callable[[Tuple[int, ...]], Tensor]


def check_tiling(tile: int, overlap: int) -> None:
    """Validate tile and overlap sizes (``ValueError`` naming the bad argument)."""
    if not isinstance(tile, int) or isinstance(tile, bool) or tile < 8:
        raise ValueError(f'tile must be an int >= 8 pixels, got {tile!r}')
    if not isinstance(overlap, int) or isinstance(overlap, bool) or overlap < 0:
        raise ValueError(f'overlap must be an int >= 0 pixels, got {overlap!r}')
    if overlap * 3 > tile:
        raise ValueError(f'overlap={overlap} must be at most tile/3 (tile={tile}) so that only '
                         'neighbouring tiles overlap')


def tile_spans(length: int, tile: int, overlap: int, align: int = 1) -> List[Span]:
    """Evenly spread ``(start, stop)`` spans of equal length covering ``[0, length)``.

    Spans are at most ``tile`` long (rounded up to a multiple of ``align`` where the length
    allows) and consecutive spans share at least ``overlap`` pixels.

    Example:
        >>> tile_spans(1000, 512, 32)
        [(0, 355), (322, 677), (645, 1000)]
    """
    check_tiling(tile, overlap)
    positive_int(align, 'align')
    if length <= tile:
        return [(0, length)]
    n = math.ceil((length - overlap) / (tile - overlap))
    size = min(length, math.ceil(math.ceil((length + (n - 1) * overlap) / n) / align) * align)
    while True:
        starts = [(i * (length - size)) // (n - 1) for i in range(n)]
        shared = min(starts[i] + size - starts[i + 1] for i in range(n - 1))
        if shared >= overlap or size >= length:
            return [(s, s + size) for s in starts]
        size += 1


def crossfade_weights(spans: Sequence[Span], index: int, scale: int) -> Tensor:
    """Cross-fade weights (float32, length ``scale * span``) of span ``index`` along one axis,
    sampled at the centres of the output pixels (``scale`` output pixels per input pixel)."""
    start, stop = spans[index]
    pos = (torch.arange(start * scale, stop * scale, dtype=torch.float64) + 0.5) / scale
    weight = torch.ones_like(pos)
    if index > 0:
        band = spans[index - 1][1] - start
        if band > 0:
            weight *= ((pos - start - band / 4) / (band / 2)).clamp(0, 1)
    if index + 1 < len(spans):
        band = stop - spans[index + 1][0]
        if band > 0:
            weight *= ((stop - pos - band / 4) / (band / 2)).clamp(0, 1)
    return weight.float()


def crossfade_layout(size: Sequence[int], tile: int, overlap: int, align: int = 1,
                     scale: Union[int, Sequence[int]] = 1
                     ) -> Tuple[Tuple[int, ...], WindowLayout]:
    """Window size and cross-faded layout of an input of ``size`` (any number of axes).

    Args:
        size: Input size per spatial axis.
        tile: Largest window side in input pixels.
        overlap: Pixels shared by neighbouring windows.
        align: Round window sides up to a multiple of this (the network's size divisor).
        scale: Output pixels per input pixel, one int or one per axis.

    Returns:
        ``(roi, layout)``; the layout's weights are the outer product of the per-axis
        cross-fades, at the output resolution.

    Example:
        >>> roi, layout = crossfade_layout((100, 90), 48, 12, scale=2)
        >>> roi, layout.starts, tuple(layout.weights((0, 0)).shape)
        ((42, 38), ((0, 29, 58), (0, 26, 52)), (84, 76))
    """
    scales = (scale,) * len(size) if isinstance(scale, int) else tuple(scale)
    if len(scales) != len(size) or not all(isinstance(s, int) and not isinstance(s, bool)
                                           and s >= 1 for s in scales):
        raise ValueError(f'scale must be an int >= 1 or one per axis ({len(size)}), got '
                         f'{scale!r}')
    spans = [tile_spans(int(n), tile, overlap, align) for n in size]
    roi = tuple(axis[0][1] - axis[0][0] for axis in spans)
    starts = tuple(tuple(a for a, _ in axis) for axis in spans)
    fades = [{a: crossfade_weights(axis, i, s) for i, (a, _) in enumerate(axis)}
             for axis, s in zip(spans, scales)]

    def weights(start: Tuple[int, ...]) -> Tensor:
        w = fades[0][start[0]]
        for axis in range(1, len(start)):
            w = w.unsqueeze(-1) * fades[axis][start[axis]]
        return w

    return roi, WindowLayout(starts, weights)
