"""Synthetic rain streaks in the style of Rain100L (light) and Rain200H (heavy).

A rain layer is sparse random seeds (``density`` = fraction of pixels that start a streak) of
random brightness, slightly widened with a Gaussian (``width``) and smeared into streaks with
kornia's motion-blur kernel (``length`` pixels long, ``angle`` degrees from vertical; the
filtering itself runs in OpenCV, which is fast on both small crops and large photos). The rainy
image is the additive model used to build those benchmarks, ``O = clip(B + intensity * R)``.
Heavy rain stacks several layers with jittered angles and lengths.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Union

import cv2
import numpy as np

from densekit.errors import positive_int
from densekit.lazy import lazy_module

kornia = lazy_module('kornia')

__all__ = ['RainStyle', 'RAIN_PRESETS', 'rain_layer', 'add_rain']


@dataclass(frozen=True)
class RainStyle:
    """Parameters of :func:`add_rain` (see the module docstring)."""

    density: float = 0.004
    angle: float = 0.0
    length: int = 15
    width: float = 1.0
    intensity: float = 0.8
    layers: int = 1
    angle_jitter: float = 0.0
    length_jitter: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.density <= 0.5:
            raise ValueError(f'density must be in (0, 0.5], got {self.density!r}')
        if not -80 <= self.angle <= 80:
            raise ValueError(f'angle must be within [-80, 80] degrees from vertical, '
                             f'got {self.angle!r}')
        if not isinstance(self.length, int) or self.length < 3:
            raise ValueError(f'length must be an int >= 3 pixels, got {self.length!r}')
        if not self.width > 0:
            raise ValueError(f'width must be > 0, got {self.width!r}')
        if not 0 < self.intensity <= 2:
            raise ValueError(f'intensity must be in (0, 2], got {self.intensity!r}')
        positive_int(self.layers, 'layers')


RAIN_PRESETS = {
    # Rain100L-like: one sparse layer of thin, fairly short streaks (input PSNR ~26 dB).
    'light': RainStyle(density=0.002, angle=0.0, length=15, width=0.8, intensity=0.6,
                       layers=1, angle_jitter=20.0, length_jitter=6),
    # Rain200H-like: three dense layers of long, wide streaks (input PSNR ~14 dB).
    'heavy': RainStyle(density=0.0025, angle=0.0, length=31, width=1.2, intensity=0.8,
                       layers=3, angle_jitter=25.0, length_jitter=10),
}


@functools.lru_cache(maxsize=256)
def _streak_kernel(length: int, angle: float) -> np.ndarray:
    """kornia's motion kernel (a normalised line), scaled so a seed keeps its brightness."""
    size = length if length % 2 else length + 1
    # kornia's angle turns a horizontal line; rain falls 90 degrees from that, tilted by `angle`
    kernel = kornia.filters.get_motion_kernel2d(size, 90.0 + angle, 0.0)[0].numpy()
    return (kernel * size).astype(np.float32)


def rain_layer(height: int, width: int, density: float, angle: float, length: int,
               streak_width: float, rng: np.random.Generator) -> np.ndarray:
    """One ``(H, W)`` float32 rain layer in [0, 1] (streak brightness)."""
    seeds = (rng.random((height, width)) < density) * rng.uniform(0.4, 1.0, (height, width))
    layer = seeds.astype(np.float32)
    if streak_width > 0.5:
        sigma = 0.5 * streak_width
        layer = cv2.GaussianBlur(layer, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
        layer *= 2 * np.pi * sigma ** 2
    kernel = _streak_kernel(int(length), round(float(angle), 1))
    layer = cv2.filter2D(layer, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    return np.clip(layer, 0, 1, out=layer)


def add_rain(image: np.ndarray, style: Union[RainStyle, str] = 'light',
             rng: Optional[np.random.Generator] = None, seed: Optional[int] = None
             ) -> np.ndarray:
    """Add synthetic rain to an ``(H, W)`` / ``(H, W, C)`` image; returns the same dtype.

    Args:
        image: uint8, uint16 or float (in [0, 1]) image.
        style: A :class:`RainStyle` or a preset name (``'light'``, ``'heavy'``).
        rng: Random generator; default one seeded with ``seed``.
        seed: Seed for the default generator (same seed, same rain).

    Example:
        >>> rainy = add_rain(np.zeros((64, 64, 3), np.uint8), 'heavy', seed=0)
        >>> rainy.dtype, bool(rainy.max() > 0)
        (dtype('uint8'), True)
    """
    if isinstance(style, str):
        if style not in RAIN_PRESETS:
            raise ValueError(f'style must be a RainStyle or one of {sorted(RAIN_PRESETS)}, '
                             f'got {style!r}')
        style = RAIN_PRESETS[style]
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise ValueError(f'image must be an (H, W) or (H, W, C) array, got {type(image)}')
    rng = rng if rng is not None else np.random.default_rng(seed)
    h, w = image.shape[:2]
    rain = np.zeros((h, w), np.float32)
    for _ in range(style.layers):
        angle = style.angle + rng.uniform(-style.angle_jitter, style.angle_jitter)
        length = style.length + int(rng.integers(-style.length_jitter, style.length_jitter + 1))
        layer = rain_layer(h, w, style.density / style.layers ** 0.5,
                           float(np.clip(angle, -80, 80)), max(3, length), style.width, rng)
        rain = np.maximum(rain, layer)
    if np.issubdtype(image.dtype, np.integer):
        peak = float(np.iinfo(image.dtype).max)
        base = image.astype(np.float32) / peak
    else:
        peak, base = 1.0, image.astype(np.float32)
    streaks = style.intensity * rain
    out = np.clip(base + (streaks[..., None] if image.ndim == 3 else streaks), 0, 1)
    if np.issubdtype(image.dtype, np.integer):
        return np.floor(out * peak + 0.5).astype(image.dtype)
    return out.astype(image.dtype)
