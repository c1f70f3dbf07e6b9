"""Synthetic rain: seeded, and density / angle / length do what they say."""
from __future__ import annotations

import numpy as np
import pytest

from densekit.tasks.restoration.metrics import psnr
from densekit.tasks.restoration.rain import RAIN_PRESETS, RainStyle, add_rain
from tests.restoration_threads import idle_threads  # noqa: F401


def _streaks(style: RainStyle, seed: int = 0) -> np.ndarray:
    return add_rain(np.zeros((96, 96), np.float32), style, seed=seed)


def _lag_correlation(layer: np.ndarray, dy: int, dx: int) -> float:
    a = layer[max(dy, 0):layer.shape[0] + min(dy, 0), max(dx, 0):layer.shape[1] + min(dx, 0)]
    b = layer[max(-dy, 0):layer.shape[0] + min(-dy, 0), max(-dx, 0):layer.shape[1] + min(-dx, 0)]
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).mean() / (a.std() * b.std()))


def test_seeded_and_dtype_preserving() -> None:
    image = np.full((40, 50, 3), 100, np.uint8)
    a, b = add_rain(image, 'light', seed=5), add_rain(image, 'light', seed=5)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and (a >= image).all() and (a > image).any()
    assert not np.array_equal(a, add_rain(image, 'light', seed=6))
    deep = add_rain(image.astype(np.uint16) * 257, 'light', seed=5)
    assert deep.dtype == np.uint16 and np.abs(deep.astype(float) / 257 - a).max() <= 1.0


def test_density_controls_the_amount_of_rain() -> None:
    photo = np.full((96, 96, 3), 90, np.uint8)
    sparse = add_rain(photo, RainStyle(density=0.001), seed=1)
    dense = add_rain(photo, RainStyle(density=0.01), seed=1)
    assert psnr(dense, photo) < psnr(sparse, photo) - 5
    assert psnr(add_rain(photo, 'heavy', seed=1), photo) < psnr(add_rain(photo, 'light', seed=1),
                                                               photo)


def test_angle_and_length_shape_the_streaks() -> None:
    vertical = _streaks(RainStyle(density=0.01, angle=0.0, length=21))
    assert _lag_correlation(vertical, 4, 0) > 0.6 > 0.2 > _lag_correlation(vertical, 0, 4)
    tilted = _streaks(RainStyle(density=0.01, angle=45.0, length=21))
    # a 45-degree streak continues along one diagonal, not the other
    assert _lag_correlation(tilted, 3, -3) - _lag_correlation(tilted, 3, 3) > 0.3 or \
        _lag_correlation(tilted, 3, 3) - _lag_correlation(tilted, 3, -3) > 0.3
    short = _streaks(RainStyle(density=0.01, angle=0.0, length=5))
    assert _lag_correlation(vertical, 8, 0) > _lag_correlation(short, 8, 0) + 0.3


def test_bad_parameters_raise() -> None:
    with pytest.raises(ValueError, match='density'):
        RainStyle(density=0.0)
    with pytest.raises(ValueError, match='length'):
        RainStyle(length=2)
    with pytest.raises(ValueError, match='style'):
        add_rain(np.zeros((8, 8)), 'drizzle')
    assert set(RAIN_PRESETS) == {'light', 'heavy'}
