"""Image file checks shared by every task's reader: truncation and pixel-type probing.

OpenCV decodes a truncated JPEG or PNG without an error: it pads the missing rows with grey and
prints a warning nobody sees. :func:`check_complete` catches that cheaply (the end-of-image
marker of JPEG, the ``IEND`` chunk of PNG) and falls back to a full Pillow decode only when the
cheap check is inconclusive. :func:`describe_unsupported` tells *why* OpenCV could not read a
file that is not corrupt (for example a 64-bit float TIFF), so the error does not say "corrupt"
for a file that is merely of an unsupported kind. :func:`encode_image` is the one place that turns
an array into the bytes of an image file.
"""
from __future__ import annotations

import os
import os.path as osp
import struct
from typing import Optional

import cv2
import numpy as np

__all__ = ['UnreadableInput', 'ImageEncodeError', 'check_complete', 'describe_unsupported',
           'png_color_type', 'read_bgr', 'split_image_array', 'bgr_from_array', 'encode_image']

_JPEG_SUFFIXES = ('.jpg', '.jpeg', '.jpe', '.jfif')
_PNG_END = b'\x00\x00\x00\x00IEND\xaeB`\x82'
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_TIFF_SAMPLE_FORMATS = {1: 'uint', 2: 'int', 3: 'float'}


class UnreadableInput(ValueError):
    """An input file is corrupt, truncated or of a kind densekit does not read.

    Inference reports it against the file and goes on with the other inputs.
    """


class ImageEncodeError(ValueError, RuntimeError):
    """OpenCV could not encode an array as an image file.

    A ``ValueError`` (the array or the suffix is unsuitable); also a ``RuntimeError``, which is
    what the encoders raised before they shared :func:`encode_image`.
    """


def _tail(path: str, size: int = 64) -> bytes:
    with open(path, 'rb') as handle:
        handle.seek(0, os.SEEK_END)
        length = handle.tell()
        handle.seek(max(0, length - size))
        return handle.read()


def _pillow_decodes(path: str) -> Optional[str]:
    """Decode ``path`` fully with Pillow; the error text, or ``None`` if it decoded."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError... per format
        return str(err) or type(err).__name__
    return None


def check_complete(path: str) -> None:
    """Raise :class:`UnreadableInput` if the JPEG or PNG at ``path`` is truncated.

    Other formats are left to their decoders, which fail on truncation themselves.
    """
    suffix = osp.splitext(path)[1].lower()
    if suffix in _JPEG_SUFFIXES:
        tail = _tail(path).rstrip(b'\x00\r\n ')
        if tail.endswith(b'\xff\xd9'):
            return
    elif suffix == '.png':
        if _tail(path, len(_PNG_END)) == _PNG_END:
            return
        if b'IEND' not in _tail(path, 1 << 16):
            raise UnreadableInput('truncated image (the PNG ends before its IEND chunk)')
    else:
        return
    # no end marker: trailing data after it is legal, so let a full decode decide
    error = _pillow_decodes(path)
    if error is not None:
        raise UnreadableInput(f'truncated or corrupt image ({error})')


def png_color_type(path: str) -> Optional[int]:
    """The PNG colour type from the ``IHDR`` chunk (0 gray, 2 RGB, 4 gray+alpha, 6 RGBA)."""
    with open(path, 'rb') as handle:
        head = handle.read(26)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b'IHDR':
        return None
    return head[25]


def _tiff_pixel_type(path: str) -> Optional[str]:
    """``'float64'``-style pixel type from the first TIFF directory, or ``None``."""
    with open(path, 'rb') as handle:
        data = handle.read(1 << 16)
    if data[:2] not in (b'II', b'MM') or len(data) < 8:
        return None
    order = '<' if data[:2] == b'II' else '>'
    if struct.unpack(order + 'H', data[2:4])[0] != 42:
        return None
    offset = struct.unpack(order + 'I', data[4:8])[0]
    if offset + 2 > len(data):
        return None
    count = struct.unpack(order + 'H', data[offset:offset + 2])[0]
    bits, sample_format = None, 1
    sizes = {1: 1, 3: 2, 4: 4}  # BYTE, SHORT, LONG
    for i in range(count):
        entry = data[offset + 2 + 12 * i: offset + 14 + 12 * i]
        if len(entry) < 12:
            break
        tag, kind, num = struct.unpack(order + 'HHI', entry[:8])
        if tag not in (258, 339) or kind not in sizes:
            continue
        size = sizes[kind]
        if size * num <= 4:  # the values fit in the entry itself
            raw = entry[8:8 + size]
        else:  # the entry holds the offset of the values
            pointer = struct.unpack(order + 'I', entry[8:12])[0]
            raw = data[pointer:pointer + size]
            if len(raw) < size:
                continue
        value = struct.unpack(order + {1: 'B', 2: 'H', 4: 'I'}[size], raw)[0]
        if tag == 258:
            bits = value
        else:
            sample_format = value
    if bits is None:
        return None
    return f'{_TIFF_SAMPLE_FORMATS.get(sample_format, "uint")}{bits}'


def describe_unsupported(path: str) -> Optional[str]:
    """Why a file that OpenCV would not decode is unsupported rather than corrupt, if known."""
    if osp.splitext(path)[1].lower() in ('.tif', '.tiff'):
        kind = _tiff_pixel_type(path)
        if kind is not None and kind not in ('uint8', 'uint16'):
            return f'unsupported pixel type {kind} (8- or 16-bit images only)'
    return None


def read_bgr(path: str) -> np.ndarray:
    """Decode ``path`` as 8-bit BGR the way mmcv's loaders do, refusing truncated files.

    Raises:
        UnreadableInput: The file is missing, corrupt, truncated or of an unsupported type.
    """
    if not osp.isfile(path):
        raise UnreadableInput('no such file')
    unsupported = describe_unsupported(path)
    if unsupported is not None:
        raise UnreadableInput(unsupported)
    check_complete(path)
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise UnreadableInput('unreadable or corrupt image')
    return image


def split_image_array(image: object, name: str = 'image'
                      ) -> tuple[np.ndarray, Optional[np.ndarray], bool]:
    """Check an in-memory image and split it into ``(rgb, alpha, gray)``.

    ``image`` is ``(H, W)`` gray, ``(H, W, 1)`` gray, ``(H, W, 2)`` gray+alpha, ``(H, W, 3)``
    RGB or ``(H, W, 4)`` RGBA (channel order as scikit-image, Pillow and imageio give it), of
    dtype uint8, uint16 or float (float pixels in [0, 1]). ``rgb`` is ``(H, W, 3)`` in the
    input's dtype (gray repeated), ``alpha`` ``(H, W)`` or None.

    Raises:
        TypeError: Not a numpy array, or an unsupported dtype.
        ValueError: Wrong shape, empty, non-finite or out-of-range float pixels.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f'{name} must be a numpy array, got {type(image).__name__}')
    if image.dtype not in (np.uint8, np.uint16) and not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f'{name} must be uint8, uint16 or float, got dtype {image.dtype}')
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4)) \
            or min(image.shape[:2]) < 1:
        raise ValueError(f'{name} must be (H, W) or (H, W, C) with C in 1-4, got shape '
                         f'{image.shape}')
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            raise ValueError(f'{name} has NaN or infinite pixels')
        low, high = float(image.min()), float(image.max())
        if low < 0 or high > 1:
            raise ValueError(f'{name}: float pixels must lie in [0, 1], got [{low:.4g}, '
                             f'{high:.4g}]; divide by 255 (or 65535) first')
    planes = image.reshape(*image.shape[:2], -1)
    channels = planes.shape[2]
    alpha = np.ascontiguousarray(planes[..., channels - 1]) if channels in (2, 4) else None
    if channels in (1, 2):
        return np.repeat(planes[..., :1], 3, axis=2), alpha, True
    return np.ascontiguousarray(planes[..., :3]), alpha, False


def bgr_from_array(image: object, name: str = 'image') -> np.ndarray:
    """An in-memory image (see :func:`split_image_array`) as the 8-bit-range BGR of mmcv.

    uint8 stays uint8, as :func:`read_bgr` returns files; uint16 becomes float32 divided by
    257 and float in [0, 1] is multiplied by 255 (float32), so no precision is lost. Alpha is
    dropped.
    """
    rgb, _, _ = split_image_array(image, name)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    if bgr.dtype == np.uint8:
        return bgr
    if bgr.dtype == np.uint16:
        return bgr.astype(np.float32) / np.float32(257.0)
    return bgr.astype(np.float32) * np.float32(255.0)


def encode_image(image: np.ndarray, ext: str = '.png', *, rgb: bool = False,
                 what: str = 'image') -> bytes:
    """The bytes of ``image`` encoded as an ``ext`` file (``'.png'``, ``'.jpg'``, ``'.tif'`` ...).

    ``image`` is what ``cv2.imencode`` takes: ``(H, W)`` gray or ``(H, W, C)`` with BGR(A)
    channels. With ``rgb=True`` a 3-dimensional ``image`` holds RGB(A) channels and its colour
    channels are reversed first (alpha stays last); a 2-dimensional one is written as it is.
    ``what`` names the picture in the error. Raises :class:`ImageEncodeError` (a ``ValueError``)
    when OpenCV refuses the array or the suffix.
    """
    if not isinstance(ext, str) or not ext.startswith('.') or len(ext) < 2:
        raise ValueError(f"ext must be a file suffix such as '.png', got {ext!r}")
    pixels = np.asarray(image)
    if rgb and pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        pixels = np.concatenate([pixels[..., 2::-1], pixels[..., 3:]], axis=2)
    pixels = np.ascontiguousarray(pixels)
    try:
        ok, buf = cv2.imencode(ext, pixels)
    except cv2.error as exc:
        raise ImageEncodeError(f'could not encode {what} ({pixels.shape} {pixels.dtype}) as '
                               f'{ext}: {str(exc).strip()}') from exc
    if not ok:
        raise ImageEncodeError(f'could not encode {what} ({pixels.shape} {pixels.dtype}) as {ext}')
    return buf.tobytes()
