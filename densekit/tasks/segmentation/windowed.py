"""Segmentation of images of any size in bounded memory: windows, blended, labels only.

mmseg's ``slide`` mode keeps the class scores of the whole image (``classes x H x W`` floats:
1.8 GB for 7 classes on an 8000x8000 image, 13 GB for 50) and a float copy of the image.
:func:`segment_windows` runs the same network window by window through densekit's windowed
engine (:func:`~densekit.windowed.engine.sliding_window_labels`, the engine that medical
volumes and tiled restoration use, here in 2D): the decoded uint8 image stays as it is, each window
is converted and normalised on its own, windows are blended with Gaussian (or constant)
weights and reduced to labels one slab of rows at a time. Memory is the image, its labels
and one slab of ``classes x window_height x W`` scores, whatever the image area.

With a ``margin`` (pixels of each window's inner borders left out of the blend) at least the
network's receptive-field radius, the labels are the whole-image labels (tested); with a
smaller one the blending decides near window borders.
"""
from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from densekit.errors import ArgumentError

__all__ = ['segment_windows', 'DEFAULT_WINDOW', 'DEFAULT_OVERLAP']

DEFAULT_WINDOW = 512
DEFAULT_OVERLAP = 0.25


def _window(window: Union[int, Sequence[int]]) -> tuple:
    size = (window, window) if isinstance(window, int) else tuple(window)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                 for s in size):
        raise ArgumentError(f'window must be a positive int or (height, width), got '
                            f'{window!r}')
    return size


def segment_windows(model: Any, image: np.ndarray, window: Union[int, Sequence[int]] =
                    DEFAULT_WINDOW, overlap: float = DEFAULT_OVERLAP, mode: str = 'gaussian',
                    sw_batch_size: int = 1, progress: bool = False, margin: int = 0
                    ) -> np.ndarray:
    """Labels ``(H, W)`` of an mmseg segmentor on an ``(H, W, 3)`` image, window by window.

    Args:
        model: An mmseg ``EncoderDecoder`` (eval mode); its data preprocessor's channel
            conversion and mean/std are applied to each window.
        image: ``(H, W, 3)`` uint8 (or float32 in [0, 255]) in the channel order the model's
            pipeline reads (BGR, as ``LoadImageFromFile`` gives it).
        window: Window size in pixels (``int`` or ``(height, width)``).
        overlap: Fraction of a window shared with its neighbour, in [0, 1).
        mode: ``'gaussian'`` or ``'constant'`` blending weights.
        sw_batch_size: Windows per forward pass.
        progress: Show a progress bar over windows.
        margin: Pixels at each window's inner borders that get no weight (see
            :func:`~densekit.windowed.engine.sliding_window_labels`): with a
            margin of the network's receptive-field radius the labels are the whole-image
            labels.

    Returns:
        ``(H, W)`` class indices, uint8 up to 256 classes, else int32 (an 8000x8000 int64 map
        alone would be 512 MB).
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image must be an (H, W, 3) array, got '
                         f'{getattr(image, "shape", type(image).__name__)}')
    size = _window(window)
    pre = model.data_preprocessor
    device = next(model.parameters()).device
    mean = None if pre.mean is None else pre.mean.reshape(1, -1, 1, 1).to(device)
    std = None if pre.std is None else pre.std.reshape(1, -1, 1, 1).to(device)
    swap = bool(getattr(pre, 'channel_conversion', False))
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]  # a view

    def predictor(windows: Tensor) -> Tensor:
        x = windows.to(device, torch.float32)
        if swap:
            x = x[:, [2, 1, 0]]
        if mean is not None:
            x = (x - mean) / std
        shape = tuple(x.shape[2:])
        metas = [dict(img_shape=shape, pad_shape=shape, ori_shape=shape)] * x.shape[0]
        return model.encode_decode(x, metas)

    from densekit.windowed.engine import sliding_window_labels

    with torch.inference_mode():
        labels = sliding_window_labels(pixels, size, sw_batch_size, predictor, overlap=overlap,
                                       mode=mode, progress=progress, fast=False,
                                       micro_batch=None, margin=margin)
    return labels[0].cpu().numpy()
