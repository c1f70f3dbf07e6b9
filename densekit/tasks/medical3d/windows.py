"""Window geometry and importance maps for sliding-window inference.

The window grid is MONAI's: along each axis the step is ``int(roi * (1 - overlap))`` (at least
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
from typing import Iterator, List, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ['fall_back_roi', 'scan_intervals', 'window_starts', 'iter_windows', 'importance_map',
           'BLEND_MODES']

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
