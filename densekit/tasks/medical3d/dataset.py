"""Folder dataset in the Medical Segmentation Decathlon / nnU-Net layout.

Reads ``dataset.json`` from ``data_root``:

* channels from ``channel_names`` (nnU-Net v2) or ``modality`` (MSD): ``{"0": "CT"}``;
* classes from ``labels``: ``{"background": 0, "liver": 1}`` (nnU-Net v2) or
  ``{"0": "background", "1": "liver"}`` (MSD);
* cases from ``training`` (``[{"image": "./imagesTr/x.nii.gz", "label": ...}]``) - an image path
  that does not exist is resolved to nnU-Net channel files ``x_0000.nii.gz``, ... - or, without
  a list, from the files in ``imagesTr``.

Splits: ``split='train'`` / ``'val'`` come from ``splits_file`` (default
``data_root/splits_final.json``; nnU-Net's format, fold ``fold``) when present, else every
``round(1 / val_fraction)``-th case (sorted by id) is validation; ``'all'`` takes every case.

Each case is read (:func:`~.nifti.read_case`), preprocessed (:class:`~.preprocess.Preprocessor`:
canonical orientation, normalisation, resampling to ``target_spacing``) once and cached in
memory; ``pipeline`` then runs on every access (patch sampling and augmentation while
training, packing only for validation). A result dict holds ``img`` ``(C, D, H, W)`` float32,
``gt_seg`` ``(D, H, W)``, ``spacing`` ``(z, y, x)``, ``case_id`` and ``fg_locations``
(per foreground class, up to 10 000 voxel indices for foreground oversampling).
"""
from __future__ import annotations

import json
import os
import os.path as osp
import zlib
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from mmengine.dataset import BaseDataset

from densekit.registry import DATASETS
from densekit.tasks.medical3d.nifti import NIFTI_SUFFIXES, case_id, channel_files, read_case
from densekit.tasks.medical3d.preprocess import Preprocessor

__all__ = ['MedicalVolumeDataset', 'MissingImages', 'read_dataset_json']

MAX_FG_LOCATIONS = 10000


class MissingImages(FileNotFoundError):
    """Training-list images of a ``dataset.json`` that exist neither as a file nor as ``_0000``
    channel files, all of them (``missing``: case id -> reason), in a one-line message."""

    def __init__(self, path: str, missing: Dict[str, str]) -> None:
        self.missing = dict(missing)
        reasons = '; '.join(reason for _, reason in sorted(self.missing.items()))
        super().__init__(f'{path}: {len(self.missing)} image(s) not found: {reasons}')


def read_dataset_json(data_root: str) -> Dict[str, Any]:
    """``dataset.json`` normalised: ``channel_names`` (list), ``classes`` (names by label value),
    ``cases`` (``[{'case_id', 'image_paths', 'label_path'}]``)."""
    path = osp.join(data_root, 'dataset.json')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} not found; a dataset folder needs dataset.json '
                                f'(MSD / nnU-Net layout)')
    with open(path) as f:
        meta = json.load(f)
    channels = meta.get('channel_names') or meta.get('modality')
    if not isinstance(channels, dict) or not channels:
        raise ValueError(f'{path}: needs "channel_names" (or MSD "modality"), e.g. {{"0": "CT"}}')
    channel_names = [channels[k] for k in sorted(channels, key=int)]
    labels = meta.get('labels')
    if not isinstance(labels, dict) or not labels:
        raise ValueError(f'{path}: needs "labels", e.g. {{"background": 0, "organ": 1}}')
    if all(str(k).isdigit() for k in labels):  # MSD: value -> name
        by_value = {int(k): v for k, v in labels.items()}
    else:  # nnU-Net v2: name -> value
        by_value = {int(v): k for k, v in labels.items()}
    if sorted(by_value) != list(range(len(by_value))):
        raise ValueError(f'{path}: label values must be 0..K-1, got {sorted(by_value)}')
    classes = [by_value[i] for i in range(len(by_value))]
    ending = meta.get('file_ending', '.nii.gz')
    cases = []
    entries = meta.get('training')
    if entries:
        missing: Dict[str, str] = {}
        for entry in entries:
            image = osp.normpath(osp.join(data_root, entry['image']))
            label = osp.normpath(osp.join(data_root, entry['label']))
            if osp.isfile(image):
                paths = [image]
            else:
                stem = image[:-len(ending)] if image.endswith(ending) else image
                paths = channel_files(f'{stem}_0000{ending}') \
                    if osp.isfile(f'{stem}_0000{ending}') else []
            if not paths:
                missing[osp.basename(stem)] = (f'image {entry["image"]} of the training list '
                                               f'not found (nor as {osp.basename(stem)}_0000'
                                               f'{ending})')
                continue
            cases.append(dict(case_id=case_id(paths[0]), image_paths=paths, label_path=label))
        if missing:
            raise MissingImages(path, missing)
    else:
        folder = osp.join(data_root, 'imagesTr')
        seen = set()
        for name in sorted(os.listdir(folder)):
            if not name.endswith(NIFTI_SUFFIXES) or case_id(name) in seen:
                continue
            cid = case_id(name)
            seen.add(cid)
            paths = channel_files(osp.join(folder, name))
            cases.append(dict(case_id=cid, image_paths=paths,
                              label_path=osp.join(data_root, 'labelsTr', cid + ending)))
    return dict(channel_names=channel_names, classes=classes, cases=cases, raw=meta)


def _fg_locations(label: np.ndarray, num_classes: int, rng: np.random.Generator
                  ) -> Dict[int, np.ndarray]:
    flat = label.ravel()
    out = {}
    for c in range(1, num_classes):
        idx = np.flatnonzero(flat == c)
        if len(idx) > MAX_FG_LOCATIONS:
            idx = np.sort(rng.choice(idx, MAX_FG_LOCATIONS, replace=False))
        out[c] = idx.astype(np.int64)
    return out


@DATASETS.register_module()
class MedicalVolumeDataset(BaseDataset):
    """NIfTI volumes in the MSD / nnU-Net layout (see the module docstring).

    Args:
        data_root: Folder with ``dataset.json``, ``imagesTr``, ``labelsTr``.
        split: ``'train'``, ``'val'`` or ``'all'``.
        fold: Fold of ``splits_final.json``.
        val_fraction: Validation share when there is no ``splits_final.json``.
        target_spacing: ``(z, y, x)`` mm to resample to (None keeps each case's grid).
        splits_file: Folds in nnU-Net's ``splits_final.json`` format (e.g. the
            ``splits.json`` of ``densekit plan``); default ``data_root/splits_final.json``.
        intensity_stats: Per-channel dataset statistics for CT normalisation
            (:class:`~.preprocess.Preprocessor`).
        pipeline: Transforms run on every access.
        cache: Keep preprocessed cases in memory.
        test_mode: mmengine flag (no refetching of failed samples).
        lazy_init: mmengine flag.
    """

    def __init__(self, data_root: str, split: str = 'train', fold: int = 0,
                 val_fraction: float = 0.2, target_spacing: Optional[Sequence[float]] = None,
                 pipeline: Sequence[Any] = (), cache: bool = True, test_mode: bool = False,
                 lazy_init: bool = False, splits_file: Optional[str] = None,
                 intensity_stats: Optional[Sequence[Optional[dict]]] = None) -> None:
        if split not in ('train', 'val', 'all'):
            raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
        if not 0 < val_fraction < 1:
            raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction!r}')
        self.split, self.fold, self.val_fraction = split, fold, val_fraction
        self.target_spacing = target_spacing
        self.splits_file, self.intensity_stats = splits_file, intensity_stats
        self.cache = cache
        self._cache: Dict[str, dict] = {}
        self._preprocessor: Optional[Preprocessor] = None
        super().__init__(data_root=data_root, pipeline=list(pipeline), test_mode=test_mode,
                         lazy_init=lazy_init, serialize_data=False)

    def load_data_list(self) -> List[dict]:  # noqa: D102
        info = read_dataset_json(self.data_root)
        self._metainfo.update(classes=tuple(info['classes']),
                              channel_names=tuple(info['channel_names']),
                              target_spacing=self.target_spacing)
        self._preprocessor = Preprocessor(info['channel_names'], self.target_spacing,
                                          intensity_stats=self.intensity_stats)
        cases = sorted(info['cases'], key=lambda c: c['case_id'])
        if self.split == 'all':
            return cases
        splits_path = self.splits_file or osp.join(self.data_root, 'splits_final.json')
        if self.splits_file and not osp.isfile(splits_path):
            raise FileNotFoundError(f'splits_file {splits_path!r} does not exist')
        if osp.isfile(splits_path):
            with open(splits_path) as f:
                splits = json.load(f)
            if not 0 <= self.fold < len(splits):
                raise ValueError(f'fold={self.fold} but {splits_path} has {len(splits)} folds')
            wanted = set(splits[self.fold][self.split])
            return [c for c in cases if c['case_id'] in wanted]
        step = max(int(round(1 / self.val_fraction)), 2)
        return [c for i, c in enumerate(cases) if (i % step == step - 1) == (self.split == 'val')]

    def _preprocessed(self, info: dict) -> dict:
        key = info['case_id']
        if key in self._cache:
            return self._cache[key]
        case = read_case(info['image_paths'], info['label_path'])
        image, label, meta = self._preprocessor(case)
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        out = dict(img=image, gt_seg=label, spacing=meta.spacing,
                   fg_locations=_fg_locations(label, len(self._metainfo['classes']), rng))
        if self.cache:
            self._cache[key] = out
        return out

    def get_data_info(self, idx: int) -> dict:  # noqa: D102
        info = super().get_data_info(idx)
        info.update(self._preprocessed(info))  # arrays are shared: transforms must not write
        return info
