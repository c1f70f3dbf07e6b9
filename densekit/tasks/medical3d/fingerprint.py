"""Dataset fingerprint for ``densekit plan``: what nnU-Net's planner reads from a dataset.

:func:`fingerprint_dataset` reads every training case of an MSD / nnU-Net folder through
densekit's NIfTI loader (:func:`~.nifti.read_case`, in worker processes, under a progress bar)
and collects, in canonical ``(z, y, x)`` order (RAS+ reoriented, as the preprocessor sees it):

* the voxel spacing and the shape after cropping to the non-zero region (nnU-Net's crop: the
  bounding box of voxels that are non-zero in any channel);
* foreground intensities per channel: up to :data:`FOREGROUND_SAMPLES` label > 0 voxels per
  case (seeded), pooled into ``mean``, ``std``, ``median``, ``min``, ``max``,
  ``percentile_00_5`` and ``percentile_99_5`` (nnU-Net's names);
* voxel counts per class, and the storage orientation (axis codes) of each case;
* anisotropy: each case's largest / smallest spacing ratio.

Bad cases (unreadable file, missing label map, a label value that ``dataset.json`` does not
declare, channels or labels on another grid or orientation than the first channel, a wrong
number of channels) are collected over the whole dataset and reported together in one
:class:`DatasetProblems` (a ``ValueError``) naming every case. Input files are only read.
"""
from __future__ import annotations

import os.path as osp
import time
import zlib
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from densekit.lazy import lazy_module
from densekit.tasks.medical3d.dataset import MissingImages, read_dataset_json
from densekit.tasks.medical3d.nifti import read_case
from densekit.tasks.medical3d.preprocess import to_canonical, voxel_spacing

nib = lazy_module('nibabel')

__all__ = ['FOREGROUND_SAMPLES', 'DatasetProblems', 'case_fingerprint', 'fingerprint_dataset',
           'intensity_statistics']

FOREGROUND_SAMPLES = 10000


class DatasetProblems(ValueError):
    """Every bad case of a dataset, in one report (``problems``: case id -> reason)."""

    def __init__(self, data_root: str, problems: Dict[str, str]) -> None:
        self.problems = dict(problems)
        lines = '\n'.join(f'  {case}: {reason}' for case, reason in sorted(problems.items()))
        super().__init__(f'{data_root}: {len(problems)} bad case(s), nothing was planned:\n'
                         f'{lines}')


def _crop_bbox(image: np.ndarray) -> Tuple[slice, ...]:
    """Bounding box of the voxels that are non-zero in any channel (whole volume if none)."""
    mask = np.any(image != 0, axis=0)
    if not mask.any():
        return tuple(slice(0, n) for n in mask.shape)
    out = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(mask.ndim) if a != axis)))
        out.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(out)


def case_fingerprint(job: Tuple[Dict[str, Any], int, int]) -> Dict[str, Any]:
    """Fingerprint of one case; never raises (a problem is returned as ``error``).

    Args:
        job: ``(case, num_channels, num_classes)`` with ``case`` an entry of
            :func:`~.dataset.read_dataset_json` ``['cases']``.
    """
    info, num_channels, num_classes = job
    cid = info['case_id']
    try:
        label_path = info['label_path']
        if not osp.isfile(label_path):
            raise ValueError(f'label map {label_path} not found')
        case = read_case(info['image_paths'], label_path)
        if case.image.shape[0] != num_channels:
            raise ValueError(f'{case.image.shape[0]} channel(s), dataset.json declares '
                             f'{num_channels}')
        values = np.unique(case.label)
        unknown = [int(v) for v in values if v >= num_classes]
        if unknown:
            raise ValueError(f'{label_path}: label value(s) {unknown} not in dataset.json '
                             f'labels (0..{num_classes - 1})')
        image, ornt = to_canonical(case.image, case.affine)
        label = to_canonical(case.label, case.affine)[0]
        spacing = voxel_spacing(case.affine)[np.argsort(ornt[:, 0])][::-1]
        box = _crop_bbox(image)
        cropped_label = label[box]
        fg = cropped_label > 0
        rng = np.random.default_rng(zlib.crc32(cid.encode()))
        samples = []
        for channel in image[(slice(None), *box)]:
            values_fg = channel[fg]
            if len(values_fg) > FOREGROUND_SAMPLES:
                values_fg = rng.choice(values_fg, FOREGROUND_SAMPLES, replace=False)
            samples.append(values_fg.astype(np.float32))
        return dict(case_id=cid, error=None, spacing=[float(s) for s in spacing],
                    shape=[int(n) for n in image.shape[1:]],
                    shape_after_crop=[int(b.stop - b.start) for b in box],
                    axcodes=''.join(nib.aff2axcodes(case.affine)),
                    class_counts=np.bincount(label.ravel(), minlength=num_classes).tolist(),
                    foreground=samples, files=len(info['image_paths']) + 1)
    except Exception as err:  # one report for every bad case, never a crash halfway
        text = str(err).strip() or type(err).__name__
        return dict(case_id=cid, error=text.splitlines()[0])


def intensity_statistics(values: np.ndarray) -> Dict[str, float]:
    """nnU-Net's foreground intensity properties of pooled samples."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return dict(mean=0.0, std=1.0, median=0.0, min=0.0, max=0.0, percentile_00_5=0.0,
                    percentile_99_5=0.0)
    lo, hi = np.percentile(values, (0.5, 99.5))
    return dict(mean=float(values.mean()), std=float(values.std()),
                median=float(np.median(values)), min=float(values.min()),
                max=float(values.max()), percentile_00_5=float(lo), percentile_99_5=float(hi))


def fingerprint_dataset(data_root: str, workers: Optional[int] = None, progress: bool = True,
                        case_ids: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Fingerprint of the training cases of ``data_root`` (see the module docstring).

    Args:
        data_root: Dataset folder with ``dataset.json``.
        workers: Reader processes (default ``min(4, CPUs)``; 1 reads in this process).
        progress: Show a progress bar.
        case_ids: Only these cases (default: all training cases).

    Returns:
        A JSON-ready dict: ``channel_names``, ``classes``, ``case_ids``, ``spacings``,
        ``shapes``, ``shapes_after_crop`` (``(z, y, x)`` per case), ``median_spacing``,
        ``median_shape_after_crop``, ``intensity`` (per channel), ``class_voxel_counts``,
        ``anisotropy`` (per case and the median), ``orientations`` (axis codes -> cases),
        ``seconds``, ``files`` and ``files_per_second``.

    Raises:
        DatasetProblems: naming every bad case.
        FileNotFoundError / ValueError: a missing or invalid ``dataset.json``.
    """
    from densekit.doctor.report import default_workers, map_files

    try:
        info = read_dataset_json(data_root)
    except MissingImages as err:  # every missing image of the training list, in one report
        raise DatasetProblems(data_root, err.missing) from err
    channels, classes = info['channel_names'], info['classes']
    cases = sorted(info['cases'], key=lambda c: c['case_id'])
    if case_ids is not None:
        wanted = set(case_ids)
        cases = [c for c in cases if c['case_id'] in wanted]
    if not cases:
        raise ValueError(f'{data_root}: no training cases found (dataset.json "training" or '
                         f'imagesTr/)')
    workers = default_workers() if workers is None else workers
    start = time.perf_counter()
    results = map_files(case_fingerprint, [(c, len(channels), len(classes)) for c in cases],
                        workers, desc='fingerprint', progress=progress)
    seconds = time.perf_counter() - start
    problems = {r['case_id']: r['error'] for r in results if r['error']}
    if problems:
        raise DatasetProblems(data_root, problems)
    spacings = np.array([r['spacing'] for r in results])
    crops = np.array([r['shape_after_crop'] for r in results])
    ratio = spacings.max(1) / spacings.min(1)
    intensity = [intensity_statistics(np.concatenate([r['foreground'][c] for r in results]))
                 for c in range(len(channels))]
    files = int(sum(r['files'] for r in results))
    return dict(
        channel_names=list(channels), classes=list(classes),
        case_ids=[r['case_id'] for r in results],
        spacings=spacings.tolist(), shapes=[r['shape'] for r in results],
        shapes_after_crop=crops.tolist(),
        median_spacing=np.median(spacings, 0).tolist(),
        median_shape_after_crop=np.median(crops, 0).tolist(),
        intensity=[dict(channel=name, **stats) for name, stats in zip(channels, intensity)],
        class_voxel_counts={name: int(sum(r['class_counts'][i] for r in results))
                            for i, name in enumerate(classes)},
        anisotropy=dict(per_case=[round(float(v), 4) for v in ratio],
                        median=float(np.median(ratio)), max=float(ratio.max())),
        orientations=dict(Counter(r['axcodes'] for r in results)),
        seconds=round(seconds, 3), files=files, workers=workers,
        files_per_second=round(files / max(seconds, 1e-9), 2))


def _summary(fingerprint: Dict[str, Any]) -> List[str]:
    """Human-readable lines (what ``densekit plan`` prints)."""
    f = fingerprint
    return [f'{len(f["case_ids"])} cases, {f["files"]} files read in {f["seconds"]:.1f} s '
            f'({f["files_per_second"]:.1f} files/s, {f["workers"]} workers)',
            f'median spacing (z, y, x) {[round(s, 3) for s in f["median_spacing"]]} mm, median '
            f'shape after crop {[int(s) for s in f["median_shape_after_crop"]]}, anisotropy '
            f'{f["anisotropy"]["median"]:.2f} (median max/min spacing)']
