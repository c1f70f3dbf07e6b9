"""NIfTI input and output through nibabel, with the checks every reader needs.

* :func:`channel_files` finds the channels of a case: nnU-Net naming (``case_0000.nii.gz``,
  ``case_0001.nii.gz``, ...) or one file (3D, or an MSD 4D image whose last axis is channels).
* :func:`read_case` loads the channels and an optional label map into arrays in the files' own
  voxel order, and raises ``ValueError`` naming the file for: unreadable files, NaN / inf
  voxels, channels or labels whose shape or affine disagree with the first image, and label
  maps that are not non-negative integers.
* :func:`case_from_image` makes the same :class:`Case` from an in-memory nibabel image or
  array (the Predictor's inputs), with the same checks.
* :func:`write_labels` writes a label map with a reference image's affine and header as
  ``uint8`` (or ``uint16`` above 255), atomically; :func:`labels_image` builds that image in
  memory.
"""
from __future__ import annotations

import gzip
import os
import os.path as osp
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from densekit.fileio import atomic_write_bytes
from densekit.lazy import lazy_module

nib = lazy_module('nibabel')

__all__ = ['NIFTI_SUFFIXES', 'channel_files', 'case_id', 'read_case', 'write_labels', 'Case',
           'load_nifti', 'case_from_image', 'labels_image']

NIFTI_SUFFIXES = ('.nii', '.nii.gz')
_CHANNEL_RE = re.compile(r'^(?P<case>.+)_(?P<channel>\d{4})(?P<ext>\.nii(\.gz)?)$')
AFFINE_ATOL = 1e-3  # mm


class UnreadableNifti(ValueError):
    """A file could not be decoded as NIfTI."""


def _strip_suffix(name: str) -> str:
    for ext in ('.nii.gz', '.nii'):
        if name.endswith(ext):
            return name[:-len(ext)]
    return name


def case_id(path: str) -> str:
    """Case name of an image file: ``'/d/liver_007_0000.nii.gz'`` -> ``'liver_007'``."""
    name = osp.basename(path)
    match = _CHANNEL_RE.match(name)
    return match.group('case') if match else _strip_suffix(name)


def channel_files(path: str) -> List[str]:
    """All channel files of the case ``path`` belongs to (sorted by channel index).

    For ``case_0001.nii.gz`` the result starts with ``case_0000.nii.gz``; a file without the
    ``_XXXX`` channel suffix is its own (possibly 4D) case.
    """
    name = osp.basename(path)
    match = _CHANNEL_RE.match(name)
    if not match:
        return [path]
    folder = osp.dirname(path) or '.'
    prefix, ext = match.group('case'), match.group('ext')
    found = []
    for other in os.listdir(folder):
        m = _CHANNEL_RE.match(other)
        if m and m.group('case') == prefix and m.group('ext') == ext:
            found.append((int(m.group('channel')), osp.join(folder, other)))
    found.sort()
    indices = [i for i, _ in found]
    if indices != list(range(len(indices))):
        raise ValueError(f'channel files of case {prefix!r} in {folder} must be numbered '
                         f'0000, 0001, ... without gaps; found {indices}')
    return [p for _, p in found]


def load_nifti(path: str) -> nib.Nifti1Image:
    """Load a NIfTI file; raise :class:`UnreadableNifti` (a ``ValueError``) naming it if corrupt."""
    if not str(path).endswith(NIFTI_SUFFIXES):
        raise ValueError(f'{path}: expected a NIfTI file ({", ".join(NIFTI_SUFFIXES)})')
    try:
        img = nib.load(path)
        img.get_fdata(dtype=np.float32)  # decode now: a truncated file fails here
    except Exception as err:  # nibabel raises many types for corrupt files
        raise UnreadableNifti(f'{path}: unreadable or corrupt NIfTI ({err})') from err
    return img


@dataclass
class Case:
    """A loaded case in file voxel order.

    Attributes:
        image: ``(C, X, Y, Z)`` float32.
        label: ``(X, Y, Z)`` int64 or None.
        affine: 4x4 voxel-to-world (RAS mm) of the first channel.
        header: NIfTI header of the first channel.
        image_paths: Channel files.
        label_path: Label file or None.
    """

    image: np.ndarray
    label: Optional[np.ndarray]
    affine: np.ndarray
    header: nib.Nifti1Header
    image_paths: Tuple[str, ...]
    label_path: Optional[str]


def _finite(data: np.ndarray, path: str) -> None:
    bad = ~np.isfinite(data)
    if bad.any():
        raise ValueError(f'{path}: {int(bad.sum())} NaN or infinite voxels; fix or mask them '
                         f'before inference')


def _same_grid(ref_shape: Sequence[int], ref_affine: np.ndarray, ref_path: str,
               shape: Sequence[int], affine: np.ndarray, path: str, what: str) -> None:
    if tuple(shape) != tuple(ref_shape):
        raise ValueError(f'{path}: {what} shape {tuple(shape)} differs from {ref_path} '
                         f'shape {tuple(ref_shape)}')
    if not np.allclose(affine, ref_affine, rtol=1e-5, atol=AFFINE_ATOL):
        raise ValueError(f'{path}: {what} affine differs from {ref_path} (max difference '
                         f'{float(np.abs(affine - ref_affine).max()):.4g}); resample it onto '
                         f'the image grid first')


CHANNEL_INTENTS = ('vector', 'rgb vector', 'rgba vector')


def has_channel_intent(img: nib.Nifti1Image) -> bool:
    """True when the header's intent code says the extra axis holds vector components."""
    try:
        return img.header.get_intent()[0] in CHANNEL_INTENTS
    except Exception:  # not a NIfTI-1/2 header, or an unknown intent code
        return False


def _channel_parts(data: np.ndarray, path: str, channel_axis: Optional[int],
                   four_d_channels: bool, intent: bool) -> List[np.ndarray]:
    """Split one file's data into 3D channels, deciding what a 4th/5th axis means."""
    if data.ndim == 3:
        return [data]
    if data.ndim == 5 and data.shape[3] == 1 and (intent or channel_axis is not None):
        data = data[:, :, :, 0]  # NIfTI stores vector components in the 5th dimension
    if data.ndim == 4 and channel_axis is not None:
        axis = channel_axis % 4
        if axis < 3:
            raise ValueError(f'channel_axis must be the 4th axis (3 or -1), got {channel_axis}')
        return [data[..., c] for c in range(data.shape[3])]
    if data.ndim == 4 and data.shape[3] == 1:
        return [data[..., 0]]
    if data.ndim == 4 and (four_d_channels or intent):
        return [data[..., c] for c in range(data.shape[3])]
    raise ValueError(f'{path}: shape {data.shape} has a 4th axis that is not marked as channels '
                     '(a time series?); pass --channel-axis 3 if it holds the channels')


def read_case(image_paths: Sequence[str], label_path: Optional[str] = None, *,
              four_d_channels: bool = True, channel_axis: Optional[int] = None) -> Case:
    """Load the channels (and label map) of one case, checking that they agree.

    Args:
        image_paths: One file per channel, or one 3D/4D file (4D: last axis = channels).
        label_path: Optional label map on the same grid.
        four_d_channels: Take the 4th axis of a single 4D file as channels (the MSD layout
            that ``dataset.json`` declares). With ``False`` a 4th axis is channels only when
            the header's intent code says so (``vector``) or ``channel_axis`` is given.
        channel_axis: The axis that holds the channels (only 3 / -1 is supported).

    Raises:
        ValueError: naming the offending file (see the module docstring).
    """
    if not image_paths:
        raise ValueError('image_paths is empty; expected at least one NIfTI file')
    channels: List[np.ndarray] = []
    ref_path = image_paths[0]
    first = load_nifti(ref_path)
    affine, header = first.affine, first.header
    for path in image_paths:
        img = first if path == ref_path else load_nifti(path)
        data = np.asarray(img.get_fdata(dtype=np.float32))
        if data.ndim not in (3, 4, 5) or (data.ndim > 3 and len(image_paths) > 1
                                          and data.shape[3:] != (1,) * (data.ndim - 3)):
            raise ValueError(f'{path}: expected a 3D volume (or one 4D image with channels '
                             f'last), got shape {data.shape}')
        parts = _channel_parts(data, path, channel_axis, four_d_channels,
                               has_channel_intent(img))
        _finite(data, path)
        _same_grid(first.shape[:3], affine, ref_path, data.shape[:3], img.affine, path,
                   'channel')
        channels += parts
    image = np.stack(channels).astype(np.float32, copy=False)
    label = None
    if label_path is not None:
        limg = load_nifti(label_path)
        raw = np.asarray(limg.get_fdata(dtype=np.float32))
        if raw.ndim == 4 and raw.shape[3] == 1:
            raw = raw[..., 0]
        _same_grid(first.shape[:3], affine, ref_path, raw.shape, limg.affine, label_path,
                   'label')
        _finite(raw, label_path)
        label = np.rint(raw).astype(np.int64)
        if np.abs(raw - label).max(initial=0) > 1e-3 or label.min(initial=0) < 0:
            raise ValueError(f'{label_path}: a label map must hold non-negative integers')
    return Case(image, label, affine, header, tuple(image_paths), label_path)


def case_from_image(source: object, *, channel_axis: Optional[int] = None,
                    spacing: Optional[Sequence[float]] = None, name: str = '<array>') -> Case:
    """A :class:`Case` from a nibabel image or an array, checked as :func:`read_case` checks.

    Args:
        source: A nibabel spatial image (its affine and header are kept), or an array in the
            file voxel order nibabel uses: ``(X, Y, Z)`` or ``(C, X, Y, Z)``.
        channel_axis: For a 4D nibabel image, the axis that holds channels (as ``read_case``).
        spacing: Voxel size ``(x, y, z)`` mm of an array (its affine is ``diag(spacing)``);
            default 1 mm.
        name: How errors name the input.

    Raises:
        TypeError: ``source`` is neither an image nor an array.
        ValueError: Wrong rank, NaN / inf voxels.
    """
    if isinstance(source, nib.spatialimages.SpatialImage):
        data = np.asarray(source.get_fdata(dtype=np.float32))
        intent = has_channel_intent(source) if isinstance(source, nib.Nifti1Image) else False
        parts = _channel_parts(data, name, channel_axis, False, intent)
        _finite(data, name)
        header = source.header if isinstance(source, nib.Nifti1Image) \
            else nib.Nifti1Header.from_header(source.header)
        return Case(np.stack(parts).astype(np.float32, copy=False), None,
                    np.asarray(source.affine, np.float64), header, (), None)
    if not isinstance(source, np.ndarray):
        raise TypeError(f'{name}: expected a nibabel image or a numpy array, got '
                        f'{type(source).__name__}')
    if source.ndim not in (3, 4) or not (np.issubdtype(source.dtype, np.number)
                                         or source.dtype == bool):
        raise ValueError(f'{name}: expected a numeric (X, Y, Z) or (C, X, Y, Z) volume, got '
                         f'shape {source.shape} {source.dtype}')
    image = source.astype(np.float32)
    if image.ndim == 3:
        image = image[None]
    _finite(image, name)
    size = (1.0, 1.0, 1.0) if spacing is None else tuple(float(s) for s in spacing)
    if len(size) != 3 or min(size) <= 0:
        raise ValueError(f'spacing must be 3 positive (x, y, z) mm values, got {spacing!r}')
    affine = np.diag([*size, 1.0])
    header = nib.Nifti1Header()
    header.set_data_shape(image.shape[1:])
    header.set_zooms(size)
    return Case(image, None, affine, header, (), None)


def labels_image(labels: np.ndarray, affine: np.ndarray, header: nib.Nifti1Header
                 ) -> nib.Nifti1Image:
    """``labels`` ``(X, Y, Z)`` as a NIfTI image with ``affine`` and a copy of ``header``.

    The dtype is ``uint8`` for labels up to 255, else ``uint16``; scaling is reset so the
    stored values are the labels.
    """
    labels = np.asarray(labels)
    shape = tuple(int(n) for n in header.get_data_shape()[:3])
    if labels.shape != shape:
        raise ValueError(f'labels shape {labels.shape} does not match the image grid {shape}')
    top = int(labels.max(initial=0))
    dtype = np.uint8 if top <= 255 else np.uint16
    header = header.copy()
    header.set_data_dtype(dtype)
    out = nib.Nifti1Image(labels.astype(dtype), affine, header)
    out.header.set_slope_inter(1.0, 0.0)
    out.header['cal_min'], out.header['cal_max'] = 0, top
    return out


def write_labels(labels: np.ndarray, affine: np.ndarray, header: nib.Nifti1Header,
                 path: str) -> str:
    """Write ``labels`` ``(X, Y, Z)`` with an input's ``affine`` and ``header``, atomically.

    The image is :func:`labels_image`; ``.nii.gz`` paths are gzip-compressed.

    Returns:
        ``path``.
    """
    data = labels_image(labels, affine, header).to_bytes()
    if path.endswith('.gz'):
        data = gzip.compress(data, compresslevel=6)
    atomic_write_bytes(data, path)
    return path
