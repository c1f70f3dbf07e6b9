"""Reading and writing images for restoration inference, keeping what the file holds.

* 8- and 16-bit PNG and TIFF, JPEG, BMP, WebP; grayscale, gray+alpha, RGB and RGBA (alpha
  kept apart);
* the EXIF orientation is applied exactly as Pillow's ``ImageOps.exif_transpose`` does;
* corrupt or truncated files raise :class:`~densekit.inference.UnreadableInput`; files of a
  kind that is not read (a float TIFF) say so ("unsupported pixel type float64").

Pixels are decoded with OpenCV (which keeps 16 bits; Pillow reduces 16-bit RGB to 8 bits) and
the orientation tag is read with Pillow. PNG output is written by :class:`PNGStreamWriter`,
band of rows by band of rows, so a large output never exists whole in memory.
"""
from __future__ import annotations

import os.path as osp
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Optional

import cv2
import numpy as np
from PIL import Image

from densekit.imageio import check_complete, describe_unsupported, png_color_type
from densekit.imageio import encode_image as _encode_pixels
from densekit.inference import UnreadableInput

__all__ = ['LoadedImage', 'read_image', 'apply_orientation', 'encode_image', 'output_suffix',
           'file_pixels', 'PNGStreamWriter']

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
        """Largest stored value (255 or 65535; 1 for float pixels)."""
        if not np.issubdtype(self.rgb.dtype, np.integer):
            return 1.0
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


_PNG_END = b'\x00\x00\x00\x00IEND\xaeB`\x82'


def _undecodable(path: str) -> str:
    """Why OpenCV could not decode ``path``: a PNG cut before ``IEND`` is called truncated."""
    if osp.splitext(path)[1].lower() == '.png':
        with open(path, 'rb') as handle:
            handle.seek(max(0, osp.getsize(path) - len(_PNG_END)))
            if handle.read() != _PNG_END:
                return 'truncated or corrupt image (the PNG ends before its IEND chunk)'
    return 'unreadable or corrupt image'


def read_image(path: str) -> LoadedImage:
    """Decode ``path`` (orientation applied).

    A gray+alpha PNG (colour type 4, which OpenCV decodes as BGRA) is read as gray with alpha.

    Raises:
        UnreadableInput: Missing, corrupt, truncated or not an 8/16-bit image.
    """
    path = str(path)
    if not osp.isfile(path):
        raise UnreadableInput('no such file')
    unsupported = describe_unsupported(path)  # a float TIFF is unsupported, not corrupt
    if unsupported is not None:
        raise UnreadableInput(unsupported)
    check_complete(path)  # OpenCV pads truncated JPEG/PNG files with grey
    orientation = _orientation(path)
    data = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if data is None:
        raise UnreadableInput(_undecodable(path))
    if data.dtype not in (np.uint8, np.uint16):
        raise UnreadableInput(f'unsupported pixel type {data.dtype} (8- or 16-bit images only)')
    data = apply_orientation(data, orientation)
    alpha = None
    channels = 1 if data.ndim == 2 else data.shape[2]
    if channels in (1, 2):
        gray, rgb = True, np.repeat(data.reshape(*data.shape[:2], -1)[..., :1], 3, axis=2)
        if channels == 2:
            alpha = np.ascontiguousarray(data[..., 1])
    elif channels == 3:  # BGR -> RGB in place: no second copy of a large image
        gray, rgb = False, cv2.cvtColor(data, cv2.COLOR_BGR2RGB, dst=data)
    elif channels == 4:
        gray = osp.splitext(path)[1].lower() == '.png' and png_color_type(path) == 4
        rgb, alpha = np.ascontiguousarray(data[..., 2::-1]), np.ascontiguousarray(data[..., 3])
    else:
        raise UnreadableInput(f'unsupported channel count {channels}')
    return LoadedImage(np.ascontiguousarray(rgb), alpha, gray)


def output_suffix(path: str) -> str:
    """Suffix of the output file: PNG, or TIFF for TIFF inputs (both keep 16 bits, losslessly)."""
    return '.tif' if osp.splitext(path)[1].lower() in ('.tif', '.tiff') else '.png'


def file_pixels(rgb: np.ndarray, alpha: Optional[np.ndarray] = None, gray: bool = False
                ) -> np.ndarray:
    """The stored channels of (rows of) an output: gray, gray+alpha, RGB or RGBA, in that order.

    Gray is the mean of the three restored channels (rounded for integer dtypes); ``alpha`` is
    ``(h, w)``.
    Returns ``(h, w)`` for gray, else ``(h, w, C)``, in ``rgb``'s dtype.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'rgb must be (H, W, 3), got shape {rgb.shape}')
    if alpha is not None and alpha.shape != rgb.shape[:2]:
        raise ValueError(f'alpha must be {rgb.shape[:2]} like rgb, got shape {alpha.shape}')
    if gray:
        base = rgb.mean(axis=2, dtype=np.float64)
        base = (base.round() if np.issubdtype(rgb.dtype, np.integer) else base).astype(rgb.dtype)
        if alpha is None:
            return base
        return np.stack([base, alpha.astype(rgb.dtype)], axis=2)
    if alpha is None:
        return rgb
    return np.concatenate([rgb, alpha.astype(rgb.dtype)[..., None]], axis=2)


def encode_image(suffix: str, rgb: np.ndarray, alpha: Optional[np.ndarray] = None,
                 gray: bool = False) -> bytes:
    """Encode RGB (+alpha) or gray (+alpha) pixels as ``suffix`` with OpenCV (whole image).

    Inference writes TIFF this way; PNG goes through :class:`PNGStreamWriter`. OpenCV has no
    gray+alpha: it is written as RGBA with equal colour channels.
    """
    pixels = file_pixels(rgb, alpha, gray)
    if pixels.ndim == 3:
        if pixels.shape[2] == 2:
            pixels = np.concatenate([np.repeat(pixels[..., :1], 3, axis=2), pixels[..., 1:]],
                                    axis=2)
    return _encode_pixels(pixels, suffix, rgb=True, what='an image')


_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_PNG_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> gray, gray+alpha, RGB, RGBA
_ROWS_PER_CHUNK = 64  # rows filtered and compressed at once (bounds the temporaries)


class PNGStreamWriter:
    """Write a PNG to an open binary file band of rows by band of rows.

    8- or 16-bit gray, gray+alpha, RGB or RGBA. Rows are filtered with the PNG "Sub" filter
    and deflated by one :func:`zlib.compressobj` as they arrive; the compressed data goes out
    in ``IDAT`` chunks, so memory stays at one band. Call :meth:`close` after the last row.

    Example:
        >>> import io
        >>> buf = io.BytesIO()
        >>> png = PNGStreamWriter(buf, width=4, height=2, channels=3, dtype=np.uint8)
        >>> png.write_rows(np.zeros((2, 4, 3), np.uint8)); png.close()
        >>> buf.getvalue()[:8] == b'\x89PNG\r\n\x1a\n'
        True
    """

    def __init__(self, handle: BinaryIO, width: int, height: int, channels: int,
                 dtype: np.dtype, level: int = 1) -> None:
        """Write the signature and ``IHDR``.

        Args:
            handle: A file opened for binary writing (e.g. by ``densekit.fileio.atomic_open``).
            width: Image width in pixels (>= 1).
            height: Image height in pixels (>= 1).
            channels: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
            dtype: ``np.uint8`` or ``np.uint16``.
            level: zlib compression level 0-9 (1: fastest).
        """
        for name, value in (('width', width), ('height', height)):
            if not isinstance(value, (int, np.integer)) or not 1 <= value < 2 ** 31:
                raise ValueError(f'{name} must be an int in [1, 2**31), got {value!r}')
        if channels not in _PNG_COLOR_TYPES:
            raise ValueError(f'channels must be 1, 2, 3 or 4 (gray, gray+alpha, RGB, RGBA), '
                             f'got {channels!r}')
        dtype = np.dtype(dtype)
        if dtype not in (np.uint8, np.uint16):
            raise TypeError(f'dtype must be uint8 or uint16, got {dtype}')
        if not isinstance(level, int) or not 0 <= level <= 9:
            raise ValueError(f'level must be an int in [0, 9], got {level!r}')
        self.handle = handle
        self.width, self.height = int(width), int(height)
        self.channels, self.dtype = channels, dtype
        self.rows_written = 0
        self._bpp = channels * dtype.itemsize  # bytes per pixel: the Sub filter's distance
        self._deflate = zlib.compressobj(level)
        self._closed = False
        handle.write(_PNG_SIGNATURE)
        self._chunk(b'IHDR', struct.pack('>IIBBBBB', self.width, self.height,
                                         8 * dtype.itemsize, _PNG_COLOR_TYPES[channels], 0, 0, 0))

    def _chunk(self, kind: bytes, data: bytes) -> None:
        self.handle.write(struct.pack('>I', len(data)) + kind)
        self.handle.write(data)
        self.handle.write(struct.pack('>I', zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF))

    def write_rows(self, rows: np.ndarray) -> None:
        """Append rows ``(r, width)`` (gray) or ``(r, width, channels)``, top to bottom."""
        if self._closed:
            raise ValueError('write_rows: the PNG is already closed')
        expected = (self.width,) if self.channels == 1 else (self.width, self.channels)
        if rows.dtype != self.dtype or rows.ndim != 1 + len(expected) \
                or tuple(rows.shape[1:]) != expected:
            raise ValueError(f'rows must be (r, {", ".join(map(str, expected))}) '
                             f'{self.dtype}, got {rows.shape} {rows.dtype}')
        if self.rows_written + rows.shape[0] > self.height:
            raise ValueError(f'{self.rows_written + rows.shape[0]} rows written to a PNG of '
                             f'height {self.height}')
        for start in range(0, rows.shape[0], _ROWS_PER_CHUNK):
            part = rows[start:start + _ROWS_PER_CHUNK].reshape(-1, self.width * self.channels)
            raw = np.ascontiguousarray(part.astype('>u2') if self.dtype == np.uint16 else part)
            raw = raw.view(np.uint8).reshape(part.shape[0], -1)
            lines = np.empty((raw.shape[0], raw.shape[1] + 1), np.uint8)
            lines[:, 0] = 1  # filter type Sub: each byte minus the byte one pixel to the left
            lines[:, 1:] = raw
            lines[:, 1 + self._bpp:] -= raw[:, :-self._bpp]  # uint8 arithmetic wraps mod 256
            data = self._deflate.compress(lines)  # any contiguous buffer: no bytes copy
            if data:
                self._chunk(b'IDAT', data)
        self.rows_written += rows.shape[0]

    def close(self) -> None:
        """Flush the compressed stream and write ``IEND`` (every row must have been written)."""
        if self._closed:
            return
        if self.rows_written != self.height:
            raise ValueError(f'PNG closed after {self.rows_written} of {self.height} rows')
        self._chunk(b'IDAT', self._deflate.flush())
        self._chunk(b'IEND', b'')
        self._closed = True
