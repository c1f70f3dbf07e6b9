"""encode_image: the one array-to-image-file encoder."""
import cv2
import numpy as np
import pytest

from densekit.imageio import ImageEncodeError, encode_image


def _decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def test_png_round_trip_bgr_gray_and_uint16():
    rng = np.random.default_rng(3)
    bgr = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_decode(encode_image(bgr)), bgr)
    gray16 = rng.integers(0, 65536, (4, 6), dtype=np.uint16)
    np.testing.assert_array_equal(_decode(encode_image(gray16, '.png')), gray16)


def test_rgb_flag_reverses_colour_channels_and_keeps_alpha_last():
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_decode(encode_image(rgb, rgb=True)), rgb[..., ::-1])
    rgba = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(_decode(encode_image(rgba, rgb=True)),
                                  rgba[..., [2, 1, 0, 3]])
    gray = rng.integers(0, 256, (3, 4), dtype=np.uint8)
    np.testing.assert_array_equal(_decode(encode_image(gray, rgb=True)), gray)


def test_bad_suffix_or_array_raises_value_error_naming_it():
    with pytest.raises(ValueError, match='ext'):
        encode_image(np.zeros((2, 2), np.uint8), 'png')
    with pytest.raises(ImageEncodeError, match='as .nosuch'):
        encode_image(np.zeros((2, 2), np.uint8), '.nosuch', what='a test picture')
    with pytest.raises(RuntimeError, match='a test picture'):
        encode_image(np.zeros((2, 2), np.uint8), '.nosuch', what='a test picture')
