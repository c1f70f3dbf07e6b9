"""Preprocessing of volumes: canonical orientation, resampling, intensity normalisation.

:class:`Preprocessor` maps a :class:`~.nifti.Case` (file voxel order) to network space and
back:

1. reorientation to the closest canonical (RAS+) orientation with ``nibabel.orientations``
   (the transform ``nibabel.as_closest_canonical`` applies), then axes ``(x, y, z)`` ->
   ``(z, y, x)`` so that ``D`` is the axial (slice) axis of NCDHW;
2. per-channel normalisation, on the original grid:

   * ``'ct'``: clip to the image's 0.5 / 99.5 percentiles, then z-score; with dataset
     statistics (``intensity_stats``, what ``densekit plan`` writes from the foreground of
     every training case) nnU-Net's global scheme instead: clip to the dataset's foreground
     0.5 / 99.5 percentiles, subtract the foreground mean, divide by its std;
   * ``'zscore'`` (MRI and anything else): z-score over the nonzero voxels when the image has
     zeros (e.g. skull-stripped MRI; voxels outside stay 0), else over all voxels;
   * ``'none'``;
3. resampling to ``target_spacing`` (``(z, y, x)`` mm): trilinear for images, nearest for
   labels; the sizes are rounded, so the effective spacing (kept in the metadata and used for
   distances) is ``spacing * old_size / new_size``.

:meth:`Preprocessor.invert_labels` takes network-space labels back to the file's grid (nearest
resampling, inverse reorientation), ready to be written with the input's affine and header.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from densekit.lazy import lazy_module
from densekit.tasks.medical3d.nifti import Case

nib = lazy_module('nibabel')

__all__ = ['Preprocessor', 'PreprocessMeta', 'normalize_channel', 'scheme_for_channel',
           'voxel_spacing', 'to_canonical', 'from_canonical']

SCHEMES = ('ct', 'zscore', 'none')


def scheme_for_channel(name: str) -> str:
    """Normalisation scheme for a dataset.json channel name (nnU-Net's convention)."""
    key = str(name).strip().lower()
    if key == 'ct':
        return 'ct'
    if key in ('nonorm', 'none'):
        return 'none'
    return 'zscore'


def normalize_channel(x: np.ndarray, scheme: str, percentiles: Tuple[float, float] = (0.5, 99.5),
                      stats: Optional[Mapping[str, float]] = None) -> np.ndarray:
    """Normalise one channel (any shape) with ``scheme`` (see the module docstring).

    ``stats`` (for ``'ct'``): dataset foreground ``mean``, ``std``, ``percentile_00_5`` and
    ``percentile_99_5``; the clip and z-score then use them instead of the image's own.

    Example:
        >>> out = normalize_channel(np.arange(10.0), 'zscore')
        >>> round(float(out.mean()), 6), round(float(out.std()), 6)
        (0.0, 1.0)
    """
    x = np.asarray(x, dtype=np.float32)
    if scheme == 'none':
        return x
    if scheme == 'ct' and stats is not None:
        missing = {'mean', 'std', 'percentile_00_5', 'percentile_99_5'} - set(stats)
        if missing:
            raise ValueError(f'CT intensity stats need {sorted(missing)}, got {dict(stats)}')
        x = np.clip(x, float(stats['percentile_00_5']), float(stats['percentile_99_5']))
        return ((x - float(stats['mean'])) / max(float(stats['std']), 1e-8)).astype(np.float32)
    if scheme == 'ct':
        lo, hi = np.percentile(x, percentiles)
        x = np.clip(x, lo, hi)
        return ((x - x.mean()) / max(float(x.std()), 1e-8)).astype(np.float32)
    if scheme != 'zscore':
        raise ValueError(f'normalisation scheme must be one of {SCHEMES}, got {scheme!r}')
    mask = x != 0
    if mask.all() or not mask.any():
        return ((x - x.mean()) / max(float(x.std()), 1e-8)).astype(np.float32)
    values = x[mask]
    mean, std = float(values.mean()), max(float(values.std()), 1e-8)
    return np.where(mask, (x - mean) / std, 0).astype(np.float32)


def voxel_spacing(affine: np.ndarray) -> np.ndarray:
    """Voxel size along each array axis (mm) from a 4x4 affine."""
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(0))


def to_canonical(data: np.ndarray, affine: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Reorient the last three axes of ``data`` to RAS+ and swap them to ``(z, y, x)``.

    Returns:
        ``(data, ornt)``: the array ``(..., Z, Y, X)`` and the orientation used (for the way
        back with :func:`from_canonical`).
    """
    orient = nib.orientations
    ornt = orient.io_orientation(affine)
    lead = data.ndim - 3
    out = data
    if lead:
        out = np.stack([orient.apply_orientation(c, ornt)
                        for c in data.reshape(-1, *data.shape[-3:])])
        out = out.reshape(*data.shape[:lead], *out.shape[-3:])
    else:
        out = orient.apply_orientation(data, ornt)
    return np.ascontiguousarray(np.swapaxes(out, -1, -3)), ornt


def from_canonical(data: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_canonical` for a 3D array ``(Z, Y, X)``."""
    orient = nib.orientations
    back = orient.ornt_transform(orient.axcodes2ornt(('R', 'A', 'S')), ornt)
    return np.ascontiguousarray(orient.apply_orientation(np.swapaxes(data, 0, 2), back))


@dataclass
class PreprocessMeta:
    """What is needed to map network-space results back to the file grid.

    Attributes:
        file_shape: Spatial shape in the file ``(X, Y, Z)``.
        ornt: Orientation transform to canonical.
        canonical_shape: Shape after reorientation ``(Z, Y, X)``.
        original_spacing: Canonical spacing ``(z, y, x)`` mm.
        spacing: Effective spacing after resampling ``(z, y, x)`` mm.
    """

    file_shape: Tuple[int, ...]
    ornt: np.ndarray
    canonical_shape: Tuple[int, ...]
    original_spacing: Tuple[float, ...]
    spacing: Tuple[float, ...]


class Preprocessor:
    """Orientation, normalisation and resampling of cases (see the module docstring).

    Args:
        schemes: Normalisation per channel (``'ct'``, ``'zscore'``, ``'none'``), or channel
            names as in dataset.json (``{'0': 'CT'}`` / ``['T1', 'T2']``).
        target_spacing: ``(z, y, x)`` mm; None keeps each case's grid.
        percentiles: CT clipping percentiles.
        intensity_stats: Per channel, dataset statistics for ``'ct'`` channels (see
            :func:`normalize_channel`; None entries or None: per-image CT clipping).

    Example:
        >>> pre = Preprocessor(['MRI'], target_spacing=(2.0, 2.0, 2.0))
        >>> pre.schemes
        ('zscore',)
    """

    def __init__(self, schemes: Union[Sequence[str], Mapping[str, str]],
                 target_spacing: Optional[Sequence[float]] = None,
                 percentiles: Tuple[float, float] = (0.5, 99.5),
                 intensity_stats: Optional[Sequence[Optional[Mapping[str, float]]]] = None
                 ) -> None:
        if isinstance(schemes, Mapping):
            schemes = [schemes[k] for k in sorted(schemes, key=int)]
        if isinstance(schemes, str) or not schemes:
            raise ValueError(f'schemes must be a non-empty list (one per channel), got '
                             f'{schemes!r}')
        self.schemes = tuple(s if s in SCHEMES else scheme_for_channel(s) for s in schemes)
        if target_spacing is not None:
            target_spacing = tuple(float(s) for s in target_spacing)
            if len(target_spacing) != 3 or min(target_spacing) <= 0:
                raise ValueError(f'target_spacing must be 3 positive (z, y, x) mm values, got '
                                 f'{target_spacing!r}')
        self.target_spacing = target_spacing
        self.percentiles = percentiles
        if intensity_stats is not None and len(intensity_stats) != len(self.schemes):
            raise ValueError(f'intensity_stats needs one entry per channel '
                             f'({len(self.schemes)}), got {len(intensity_stats)}')
        self.intensity_stats = (tuple(intensity_stats) if intensity_stats is not None
                                else (None,) * len(self.schemes))

    def __call__(self, case: Case) -> Tuple[np.ndarray, Optional[np.ndarray], PreprocessMeta]:
        """Preprocess a case.

        Returns:
            ``(image (C, D, H, W) float32, label (D, H, W) uint8/int16 or None, meta)``.

        Raises:
            ValueError: the case has a different number of channels than ``schemes``.
        """
        if case.image.shape[0] != len(self.schemes):
            raise ValueError(f'{case.image_paths[0]}: {case.image.shape[0]} channels, but the '
                             f'model expects {len(self.schemes)} ({", ".join(self.schemes)})')
        image, ornt = to_canonical(case.image, case.affine)
        spacing_xyz = voxel_spacing(case.affine)[np.argsort(ornt[:, 0])]
        original_spacing = tuple(float(s) for s in spacing_xyz[::-1])
        image = np.stack([normalize_channel(c, s, self.percentiles, st) for c, s, st in
                          zip(image, self.schemes, self.intensity_stats)])
        label = None if case.label is None else to_canonical(case.label, case.affine)[0]
        canonical_shape = tuple(image.shape[1:])
        new_shape = canonical_shape
        if self.target_spacing is not None:
            new_shape = tuple(max(int(round(n * s / t)), 1) for n, s, t in
                              zip(canonical_shape, original_spacing, self.target_spacing))
        spacing = tuple(s * n / m for s, n, m in zip(original_spacing, canonical_shape,
                                                     new_shape))
        if new_shape != canonical_shape:
            image = resample(image, new_shape, 'linear')
            if label is not None:
                label = resample(label[None], new_shape, 'nearest')[0]
        if label is not None:
            label = label.astype(np.uint8 if label.max(initial=0) < 256 else np.int16)
        meta = PreprocessMeta(tuple(case.image.shape[1:]), ornt, canonical_shape,
                              original_spacing, spacing)
        return image.astype(np.float32, copy=False), label, meta

    @staticmethod
    def invert_labels(labels: Union[np.ndarray, torch.Tensor], meta: PreprocessMeta
                      ) -> np.ndarray:
        """Network-space labels ``(D, H, W)`` -> file-grid labels ``(X, Y, Z)``."""
        arr = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if tuple(arr.shape) != tuple(meta.canonical_shape):
            arr = resample(arr[None], meta.canonical_shape, 'nearest')[0]
        out = from_canonical(arr, meta.ornt)
        if tuple(out.shape) != tuple(meta.file_shape):
            raise RuntimeError(f'inverse reorientation gave {out.shape}, expected '
                               f'{meta.file_shape}')
        return out


def resample(volume: np.ndarray, shape: Sequence[int], mode: str) -> np.ndarray:
    """Resample ``(C, D, H, W)`` to ``shape``: ``'linear'`` (trilinear) or ``'nearest'``."""
    if mode not in ('linear', 'nearest'):
        raise ValueError(f"mode must be 'linear' or 'nearest', got {mode!r}")
    dtype = volume.dtype
    t = torch.from_numpy(np.ascontiguousarray(volume)).float()[None]
    if mode == 'linear':
        out = F.interpolate(t, size=tuple(shape), mode='trilinear', align_corners=False)
    else:
        out = F.interpolate(t, size=tuple(shape), mode='nearest-exact')
    out = out[0].numpy()
    return out if mode == 'linear' else np.rint(out).astype(dtype)
