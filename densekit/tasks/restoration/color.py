"""Colour conversions used by the SR metrics and luma-only models (ITU-R BT.601, MATLAB style).

``rgb2ycbcr`` follows MATLAB's ``rgb2ycbcr`` for images scaled to ``[0, 1]``: Y in
``[16, 235] / 255`` and Cb, Cr in ``[16, 240] / 255``. The SR literature reports PSNR/SSIM on
this Y channel.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ['rgb2y', 'rgb2ycbcr', 'ycbcr2rgb', 'rgb2y_numpy']

_Y = (65.481, 128.553, 24.966)
_CB = (-37.797, -74.203, 112.0)
_CR = (112.0, -93.786, -18.214)
_OFFSET = (16.0, 128.0, 128.0)


def _matrix(like: Tensor) -> Tensor:
    return torch.tensor([_Y, _CB, _CR], dtype=like.dtype, device=like.device) / 255.0


def rgb2y(rgb: Tensor) -> Tensor:
    """BT.601 luma of ``(N, 3, H, W)`` RGB in ``[0, 1]``; returns ``(N, 1, H, W)`` in [0, 1].

    Example:
        >>> round(rgb2y(torch.ones(1, 3, 2, 2)).flatten()[0].item() * 255, 3)
        235.0
    """
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f'rgb must be (N, 3, H, W), got shape {tuple(rgb.shape)}')
    weights = _matrix(rgb)[0].view(1, 3, 1, 1)
    return (rgb * weights).sum(1, keepdim=True) + _OFFSET[0] / 255.0


def rgb2ycbcr(rgb: Tensor) -> Tensor:
    """``(N, 3, H, W)`` RGB in [0, 1] -> YCbCr in [0, 1] (MATLAB ``rgb2ycbcr`` / 255)."""
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f'rgb must be (N, 3, H, W), got shape {tuple(rgb.shape)}')
    offset = torch.tensor(_OFFSET, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1) / 255
    return torch.einsum('oc,nchw->nohw', _matrix(rgb), rgb) + offset


def ycbcr2rgb(ycbcr: Tensor) -> Tensor:
    """Inverse of :func:`rgb2ycbcr` for ``(N, 3, H, W)`` tensors."""
    if ycbcr.dim() != 4 or ycbcr.shape[1] != 3:
        raise ValueError(f'ycbcr must be (N, 3, H, W), got shape {tuple(ycbcr.shape)}')
    offset = torch.tensor(_OFFSET, dtype=ycbcr.dtype, device=ycbcr.device).view(1, 3, 1, 1) / 255
    inverse = torch.linalg.inv(_matrix(ycbcr).double()).to(ycbcr.dtype)
    return torch.einsum('oc,nchw->nohw', inverse, ycbcr - offset)


def rgb2y_numpy(image: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """BT.601 Y of an ``(H, W, 3)`` RGB array in ``[0, data_range]``, as float64 in that range.

    Example:
        >>> rgb2y_numpy(np.full((1, 1, 3), 255.0)).item()
        235.0
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image must be (H, W, 3) RGB, got shape {image.shape}')
    rgb = image.astype(np.float64) / data_range
    y = rgb @ np.asarray(_Y) + _OFFSET[0]
    return y * (data_range / 255.0)
