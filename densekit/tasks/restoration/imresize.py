"""MATLAB-compatible bicubic ``imresize`` (the degradation the super-resolution literature uses).

MATLAB's ``imresize(img, 1/s, 'bicubic')`` uses Keys' cubic kernel with ``a = -0.5``

    k(x) = 1.5|x|^3 - 2.5|x|^2 + 1                    for |x| <= 1
    k(x) = -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2            for 1 < |x| <= 2

and, when shrinking by a factor ``s > 1``, *antialiases* by stretching the kernel to
``k(x / s) / s`` (support ``4 s`` input pixels). Output pixel ``j`` (1-based) is centred at input
coordinate ``u = j * s_in/out + 0.5 * (1 - s_in/out)``; the weights of each output pixel are
normalised to sum to 1, and taps outside the image are mirrored (``symmetric`` padding: the
edge pixel is repeated). The two axes are resized independently (the operation is separable).
For integer inputs the result is rounded half away from zero and clipped to the dtype's range.

Everything here is plain PyTorch so it runs on batches, on the GPU and in data pipelines.
"""
from __future__ import annotations

import math
import warnings
from typing import Tuple, Union

import numpy as np
import torch
from torch import Tensor

from densekit.errors import positive_int

__all__ = ['cubic', 'resize_weights', 'imresize', 'imresize_tensor', 'upscale_integer']


def cubic(x: Tensor) -> Tensor:
    """Keys' cubic convolution kernel with ``a = -0.5`` (MATLAB's ``cubic``)."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = 1.5 * ax3 - 2.5 * ax2 + 1
    outer = -0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2
    return torch.where(ax <= 1, inner, torch.where(ax <= 2, outer, torch.zeros_like(ax)))


def resize_weights(in_len: int, out_len: int, scale: float, antialias: bool = True,
                   dtype: torch.dtype = torch.float64) -> Tuple[Tensor, Tensor]:
    """Weights and source indices of a 1-D MATLAB bicubic resize.

    Args:
        in_len: Input length (pixels).
        out_len: Output length (pixels).
        scale: ``out / in`` scale factor (``0.5`` halves the size).
        antialias: Stretch the kernel when shrinking (MATLAB's default).
        dtype: Floating dtype of the weights.

    Returns:
        ``(weights, indices)``, both ``(out_len, taps)``: output ``j`` is
        ``sum_t weights[j, t] * input[indices[j, t]]`` (0-based, mirrored into range).

    Example:
        >>> w, idx = resize_weights(8, 4, 0.5)
        >>> w.shape, idx[0].tolist()
        (torch.Size([4, 8]), [2, 1, 0, 0, 1, 2, 3, 4])
    """
    for name, value in (('in_len', in_len), ('out_len', out_len)):
        positive_int(value, name)
    if not scale > 0:
        raise ValueError(f'scale must be > 0, got {scale!r}')
    shrink = scale < 1 and antialias
    width = 4.0 / scale if shrink else 4.0
    x = torch.arange(1, out_len + 1, dtype=dtype)
    u = x / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate of each output centre
    left = torch.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + torch.arange(taps, dtype=dtype)[None]  # 1-based
    dist = u[:, None] - indices
    weights = scale * cubic(dist * scale) if shrink else cubic(dist)
    weights = weights / weights.sum(1, keepdim=True)
    keep = (weights != 0).any(0)  # drop tap columns that are zero for every output
    first, last = int(keep.nonzero()[0]), int(keep.nonzero()[-1])
    weights, indices = weights[:, first:last + 1], indices[:, first:last + 1]
    # symmetric padding: ..., 2, 1 | 1, 2, ..., n | n, n-1, ...
    mirror = torch.cat([torch.arange(in_len), torch.arange(in_len - 1, -1, -1)])
    idx = mirror[torch.remainder(indices.long() - 1, 2 * in_len)]
    return weights, idx


def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def _out_size(size: int, scale: float) -> int:
    return int(math.ceil(size * scale - 1e-9))


def imresize_tensor(x: Tensor, scale: float, size: Union[Tuple[int, int], None] = None,
                    antialias: bool = True) -> Tensor:
    """Bicubic resize of a float tensor ``(..., H, W)`` the way MATLAB's ``imresize`` does.

    Args:
        x: Floating tensor; the last two dims are resized (e.g. ``(N, C, H, W)``).
        scale: Scale factor (``0.5`` halves, ``2`` doubles). Ignored where ``size`` is given.
        size: Output ``(H, W)``; default ``ceil(H * scale), ceil(W * scale)``.
        antialias: Antialias when shrinking (MATLAB's default).

    Returns:
        The resized tensor, same dtype (no rounding or clipping).

    Example:
        >>> imresize_tensor(torch.rand(2, 3, 64, 48), 0.5).shape
        torch.Size([2, 3, 32, 24])
    """
    if not torch.is_floating_point(x):
        raise TypeError(f'x must be a floating tensor, got dtype {x.dtype}')
    if x.dim() < 2:
        raise ValueError(f'x must have at least 2 dims (..., H, W), got shape {tuple(x.shape)}')
    if size is None and float(scale).is_integer() and scale > 1 and _tracing():
        return upscale_integer(x, int(scale))  # the traced graph keeps dynamic sizes
    h, w = x.shape[-2:]
    out_h, out_w = size if size is not None else (_out_size(h, scale), _out_size(w, scale))
    scales = (out_h / h, out_w / w) if size is not None else (scale, scale)
    out = x
    # MATLAB resizes the dimension with the smaller scale first; the result only differs by
    # rounding error, but following it keeps intermediate sizes small when shrinking.
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    for axis in order:
        dim = out.dim() - 2 + axis
        in_len, out_len = out.shape[dim], (out_h, out_w)[axis]
        if in_len == out_len and scales[axis] == 1:
            continue
        weights, idx = resize_weights(in_len, out_len, scales[axis], antialias, torch.float64)
        weights = weights.to(device=out.device, dtype=out.dtype)
        idx = idx.to(out.device)
        moved = out.movedim(dim, -1)  # (..., L)
        acc = moved[..., idx[:, 0]] * weights[:, 0]
        for tap in range(1, idx.shape[1]):  # one tap at a time: memory stays O(output)
            acc.add_(moved[..., idx[:, tap]] * weights[:, tap])
        out = acc.movedim(-1, dim)
    return out


def _phase_kernels(scale: int, dtype: torch.dtype) -> Tensor:
    """``(scale, 5)`` taps over input offsets -2..2 of each output phase of an x``scale`` upscale.

    Output ``q * scale + p`` reads input ``q - 2 .. q + 2`` with the weights of phase ``p``;
    they are read off :func:`resize_weights` away from the borders, so they are MATLAB's.
    """
    length = 8
    with warnings.catch_warnings():  # constants: nothing here depends on a traced input
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        weights, idx = resize_weights(length, length * scale, float(scale), True,
                                      torch.float64)
        weights, idx = weights.tolist(), idx.tolist()
    kernels = [[0.0] * 5 for _ in range(scale)]
    centre = length // 2
    for phase in range(scale):
        row = centre * scale + phase
        for tap, source in enumerate(idx[row]):
            kernels[phase][source - centre + 2] += weights[row][tap]
    return torch.tensor(kernels, dtype=dtype)


def _upscale_last_axis(x: Tensor, scale: int, kernels: Tensor) -> Tensor:
    lead = x.shape[:-1]
    # symmetric padding by 2 (the edge pixel repeated), as MATLAB mirrors the taps
    padded = torch.cat([x[..., 1:2], x[..., :1], x, x[..., -1:], x[..., -2:-1]], dim=-1)
    flat = padded.reshape(-1, 1, padded.shape[-1])
    phases = torch.nn.functional.conv1d(flat, kernels[:, None].to(x.dtype))  # (B, s, L)
    return phases.transpose(1, 2).reshape(*lead, -1)


def upscale_integer(x: Tensor, scale: int) -> Tensor:
    """MATLAB bicubic x``scale`` upscale of ``(..., H, W)`` with shape-independent ops.

    The same result as :func:`imresize_tensor` (up to the order of the float sums) written as
    a fixed polyphase filter: symmetric padding, a 5-tap convolution per output phase and an
    interleave. Nothing depends on the input size, so a traced or ONNX-exported graph keeps
    dynamic sizes. Needs ``H, W >= 2``.
    """
    positive_int(scale, 'scale')
    if scale == 1:
        return x
    kernels = _phase_kernels(scale, torch.float64)
    rows = _upscale_last_axis(x.transpose(-1, -2), scale, kernels).transpose(-1, -2)
    return _upscale_last_axis(rows, scale, kernels)


def imresize(image: np.ndarray, scale: float, size: Union[Tuple[int, int], None] = None,
             antialias: bool = True) -> np.ndarray:
    """MATLAB ``imresize(image, scale, 'bicubic')`` on an ``(H, W)`` or ``(H, W, C)`` array.

    Integer images (uint8, uint16) come back in their dtype, rounded half away from zero and
    clipped, as MATLAB returns them; float images come back as float64 without clipping.

    Example:
        >>> imresize(np.arange(1, 9, dtype=float)[None].repeat(8, 0), 0.5)[0].round(4).tolist()
        [1.4492, 3.4883, 5.5117, 7.5508]
    """
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise ValueError('image must be an (H, W) or (H, W, C) numpy array, got '
                         f'{type(image).__name__} {getattr(image, "shape", "")}')
    chw = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float64))
    chw = chw[None] if image.ndim == 2 else chw.permute(2, 0, 1)
    out = imresize_tensor(chw, scale, size, antialias)
    out = out[0] if image.ndim == 2 else out.permute(1, 2, 0)
    result = out.numpy()
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        result = np.clip(np.floor(result + 0.5), info.min, info.max).astype(image.dtype)
    return result
