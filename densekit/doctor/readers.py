"""File readers run in the worker processes of ``densekit check-data``.

Each reader takes one picklable item, opens the files itself and returns plain facts (shapes,
value counts, error texts). A reader never raises for a bad file: the error text goes into
its result, so one corrupt file cannot stop the check.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Dict, Optional, Tuple

import numpy as np

__all__ = ['image_facts', 'label_facts', 'nifti_facts', 'case_facts', 'pair_facts',
           'palette_to_index', 'seg_pair_facts', 'MAX_COLOURS']

MAX_COLOURS = 64  # colours of an RGB mask kept (the most frequent first)


def _error_text(err: BaseException) -> str:
    return str(err) or type(err).__name__


def image_facts(path: str) -> Dict[str, Any]:
    """``{'shape': (H, W) or None, 'error': text or None}`` of an image read as 8-bit BGR."""
    from densekit.imageio import read_bgr

    try:
        image = read_bgr(path)
    except Exception as err:  # any decoder failure is this file's problem
        return dict(shape=None, error=_error_text(err))
    return dict(shape=tuple(int(n) for n in image.shape[:2]), error=None)


def _value_counts(array: np.ndarray) -> Dict[int, int]:
    flat = array.ravel()
    if flat.size == 0:
        return {}
    if flat.dtype.kind in 'ui' and flat.min() >= 0 and flat.max() < 1 << 17:
        counts = np.bincount(flat.astype(np.int64))
        return {int(v): int(counts[v]) for v in np.flatnonzero(counts)}
    values, counts = np.unique(flat, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def label_facts(path: str) -> Dict[str, Any]:
    """Facts of a segmentation label map, decoded the way mmseg's ``LoadAnnotations`` does
    (Pillow, ``unchanged``: palette PNGs give their indices).

    Returns:
        ``shape`` (H, W), ``mode`` (Pillow mode), ``channels``, ``dtype``, ``values``
        (value -> pixels, for single-channel maps and for colour maps whose channels are
        equal), ``colours`` (``[[r, g, b, pixels], ...]`` for colour maps, most frequent first,
        at most :data:`MAX_COLOURS`), ``num_colours`` and ``error``.
    """
    from PIL import Image

    from densekit.imageio import check_complete

    out: Dict[str, Any] = dict(shape=None, mode=None, channels=0, dtype=None, values=None,
                               colours=None, num_colours=0, error=None)
    if not osp.isfile(path):
        out['error'] = 'no such file'
        return out
    try:
        check_complete(path)
        with Image.open(path) as image:
            out['mode'] = image.mode
            array = np.array(image)
    except Exception as err:  # truncated, corrupt or not an image
        out['error'] = _error_text(err)
        return out
    out['shape'] = tuple(int(n) for n in array.shape[:2])
    out['dtype'] = str(array.dtype)
    out['channels'] = 1 if array.ndim == 2 else int(array.shape[2])
    if array.ndim == 2:
        out['values'] = _value_counts(array)
        return out
    rgb = array[..., :3]
    if out['channels'] >= 3 and not ((rgb[..., 0] == rgb[..., 1]).all()
                                     and (rgb[..., 1] == rgb[..., 2]).all()):
        packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) \
            | rgb[..., 2].astype(np.int64)
        values, counts = np.unique(packed, return_counts=True)
        order = np.argsort(-counts, kind='stable')
        out['num_colours'] = int(len(values))
        out['colours'] = [[int(values[i] >> 16), int((values[i] >> 8) & 255),
                           int(values[i] & 255), int(counts[i])] for i in order[:MAX_COLOURS]]
        return out
    out['values'] = _value_counts(array[..., 0])
    return out


def palette_to_index(item: Tuple[str, str, Tuple[Tuple[int, int, int], ...], int]
                     ) -> Dict[str, Any]:
    """Convert one RGB colour mask to a class-index PNG by a palette.

    ``item`` is ``(src, dst, palette, ignore_index)``: palette entry ``i`` becomes class ``i``;
    a colour that is not in the palette becomes ``ignore_index``. ``dst`` is written
    atomically and must not be ``src``.

    Returns:
        ``{'dst', 'unmatched' (pixels of colours not in the palette), 'error'}``.
    """
    from PIL import Image

    from densekit.fileio import atomic_write_bytes
    from densekit.tasks.segmentation.synthetic import encode_png

    src, dst, palette, ignore_index = item
    try:
        if osp.exists(dst) and osp.samefile(src, dst):
            raise ValueError(f'refusing to overwrite the input {src}')
        with Image.open(src) as image:
            rgb = np.array(image.convert('RGB'))
        packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) \
            | rgb[..., 2].astype(np.int64)
        index = np.full(packed.shape, ignore_index, np.uint8)
        matched = np.zeros(packed.shape, bool)
        for i, (r, g, b) in enumerate(palette):
            hit = packed == ((int(r) << 16) | (int(g) << 8) | int(b))
            index[hit] = i
            matched |= hit
        atomic_write_bytes(encode_png(index), dst)
    except Exception as err:  # reported against the file
        return dict(dst=dst, unmatched=0, error=_error_text(err))
    return dict(dst=dst, unmatched=int((~matched).sum()), error=None)


def nifti_facts(path: str, with_values: bool = True) -> Dict[str, Any]:
    """Header facts of a NIfTI file, and whether its voxels decode and are finite.

    Returns:
        ``shape``, ``affine`` (4x4 list), ``spacing`` (first three zooms), ``axcodes``,
        ``intent_channels`` (the header marks the 4th/5th axis as vector components),
        ``nonfinite`` (NaN/inf voxels), ``error`` and, with ``with_values``, ``values``
        (value -> voxels when every voxel is an integer, else None) and ``non_integer``
        (voxels that are not integers).
    """
    import nibabel as nib

    from densekit.tasks.medical3d.nifti import has_channel_intent, load_nifti

    out: Dict[str, Any] = dict(shape=None, affine=None, spacing=None, axcodes=None,
                               intent_channels=False, nonfinite=0, values=None, non_integer=0,
                               error=None)
    if not osp.isfile(path):
        out['error'] = 'no such file'
        return out
    try:
        img = load_nifti(path)
        data = np.asarray(img.get_fdata(dtype=np.float32))
        out['shape'] = tuple(int(n) for n in img.shape)
        out['affine'] = np.asarray(img.affine, np.float64).tolist()
        out['spacing'] = tuple(round(float(z), 4) for z in img.header.get_zooms()[:3])
        try:
            out['axcodes'] = ''.join(str(c) for c in nib.aff2axcodes(img.affine))
        except Exception:  # singular affine: no orientation
            out['axcodes'] = '???'
        out['intent_channels'] = has_channel_intent(img)
        finite = np.isfinite(data)
        out['nonfinite'] = int(data.size - finite.sum())
        if with_values:
            kept = np.where(finite, data, 0)
            rounded = np.rint(kept)
            out['non_integer'] = int((np.abs(kept - rounded) > 1e-3).sum())
            if out['non_integer'] == 0 and data.size:
                out['values'] = _value_counts(rounded[finite].astype(np.int64))
    except Exception as err:  # unreadable or corrupt
        out['error'] = _error_text(err)
    return out


def case_facts(item: Tuple[Tuple[str, ...], Optional[str]]) -> Dict[str, Any]:
    """:func:`nifti_facts` of every channel file and of the label file of one case.

    Voxel value counts are kept for the label only (an image's values are not needed).
    """
    image_paths, label_path = item
    images = [nifti_facts(path, with_values=False) for path in image_paths]
    return dict(images=images, label=nifti_facts(label_path) if label_path else None)


def pair_facts(item: Tuple[Optional[str], str]) -> Dict[str, Any]:
    """:func:`image_facts` of an ``(lq, gt)`` pair (``lq`` may be None)."""
    lq, gt = item
    return dict(lq=image_facts(lq) if lq else None, gt=image_facts(gt))


def seg_pair_facts(item: Tuple[str, Optional[str]]) -> Dict[str, Any]:
    """:func:`image_facts` of the image and :func:`label_facts` of the label of one sample."""
    image, label = item
    return dict(image=image_facts(image), label=label_facts(label) if label else None)
