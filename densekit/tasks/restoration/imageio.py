"""Reading and writing images for restoration inference, keeping what the file holds.

* 8- and 16-bit PNG and TIFF, JPEG, BMP, WebP; grayscale, RGB and RGBA (alpha kept apart);
* the EXIF orientation is applied exactly as Pillow's ``ImageOps.exif_transpose`` does;
* corrupt or truncated files raise :class:`~densekit.inference.UnreadableInput`.

Pixels are decoded with OpenCV (which keeps 16 bits; Pillow reduces 16-bit RGB to 8 bits) and
the orientation tag is read with Pillow.
"""
from __future__ import annotations

import os.path as osp
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
from PIL import Image

from densekit.inference import UnreadableInput

__all__ = ['LoadedImage', 'read_image', 'apply_orientation', 'encode_image', 'output_suffix']

_ORIENTATION_TAG = 0x0112


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF ``orientation`` (1-8) to an ``(H, W[, C])`` array like ``exif_transpose``.

    Example:
        >>> apply_orientation(np.arange(6).reshape(2, 3), 6).tolist()  # 90 degrees clockwise
        [[3, 0], [4, 1], [5, 2]]
    """
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],                       # mirror left-right
        3: lambda a: a[::-1, ::-1],                    # rotate 180
        4: lambda a: a[::-1],                          # mirror top-bottom
        5: lambda a: a.swapaxes(0, 1),                 # transpose
        6: lambda a: np.rot90(a, -1),                  # rotate 90 clockwise
        7: lambda a: np.rot90(a, 2).swapaxes(0, 1),    # transverse
        8: lambda a: np.rot90(a, 1),                   # rotate 90 counter-clockwise
    }
    if orientation not in ops:
        return image
    return np.ascontiguousarray(ops[orientation](image))


@dataclass
class LoadedImage:
    """A decoded image: ``rgb`` ``(H, W, 3)`` in the stored dtype, optional ``(H, W)`` alpha."""

    rgb: np.ndarray
    alpha: Optional[np.ndarray]
    gray: bool

    @property
    def peak(self) -> float:
        """Largest stored value (255 or 65535)."""
        return float(np.iinfo(self.rgb.dtype).max)


def _orientation(path: str) -> int:
    try:
        with Image.open(path) as image:
            if osp.splitext(path)[1].lower() in ('.jpg', '.jpeg'):
                image.load()  # a truncated JPEG fails here (OpenCV would pad it with grey)
            return int(image.getexif().get(_ORIENTATION_TAG, 1))
    except OSError as err:
        if 'truncated' in str(err) or 'broken' in str(err):
            raise UnreadableInput(f'corrupt image: {err}') from err
        return 1  # a format Pillow cannot open but OpenCV decoded: no EXIF


def read_image(path: str) -> LoadedImage:
    """Decode ``path`` (orientation applied).

    Raises:
        UnreadableInput: Missing, corrupt, truncated or not an 8/16-bit image.
    """
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise UnreadableInput('unreadable or corrupt image')
    if data.dtype not in (np.uint8, np.uint16):
        raise UnreadableInput(f'unsupported pixel type {data.dtype} (8- or 16-bit images only)')
    data = apply_orientation(data, _orientation(str(path)))
    alpha = None
    if data.ndim == 2:
        gray, rgb = True, np.repeat(data[..., None], 3, axis=2)
    elif data.shape[2] == 1:
        gray, rgb = True, np.repeat(data, 3, axis=2)
    elif data.shape[2] in (3, 4):
        gray, rgb = False, data[..., 2::-1]
        if data.shape[2] == 4:
            alpha = np.ascontiguousarray(data[..., 3])
    else:
        raise UnreadableInput(f'unsupported channel count {data.shape[2]}')
    return LoadedImage(np.ascontiguousarray(rgb), alpha, gray)


def output_suffix(path: str) -> str:
    """Suffix of the output file: PNG, or TIFF for TIFF inputs (both keep 16 bits, losslessly)."""
    return '.tif' if osp.splitext(path)[1].lower() in ('.tif', '.tiff') else '.png'


def encode_image(suffix: str, rgb: np.ndarray, alpha: Optional[np.ndarray] = None,
                 gray: bool = False) -> bytes:
    """Encode RGB (+alpha) or gray pixels as ``suffix`` (``'.png'`` or ``'.tif'``)."""
    if gray:
        channels = [rgb.mean(axis=2, dtype=np.float64).round().astype(rgb.dtype)[..., None]]
    else:
        channels = [rgb[..., ::-1]]
    if alpha is not None:
        channels.append(alpha[..., None])
    pixels = np.ascontiguousarray(np.concatenate(channels, axis=2))
    if pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    elif pixels.shape[2] == 2:  # gray + alpha: OpenCV writes BGRA
        pixels = np.concatenate([np.repeat(pixels[..., :1], 3, axis=2), pixels[..., 1:]], axis=2)
    ok, buf = cv2.imencode(suffix, pixels)
    if not ok:
        raise RuntimeError(f'could not encode a {pixels.shape} {pixels.dtype} image as {suffix}')
    return buf.tobytes()
