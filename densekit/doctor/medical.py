"""Medical checks (MSD / nnU-Net folders): modalities per case, image/label shape and affine,
label voxel values against ``dataset.json``, NaN voxels, and a table of spacing, orientation
and shape per case.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from collections import Counter
from typing import Any, Dict, List, Optional

import numpy as np

from densekit.doctor.readers import case_facts
from densekit.doctor.report import Report, Timer, map_files
from densekit.tasks.medical3d.nifti import AFFINE_ATOL, NIFTI_SUFFIXES, case_id

__all__ = ['check_medical']


def _raw_cases(data_root: str, meta: dict) -> List[dict]:
    """Every case of ``dataset.json`` without stopping at missing files."""
    ending = meta.get('file_ending', '.nii.gz')
    cases = []
    for entry in meta.get('training') or ():
        image = osp.normpath(osp.join(data_root, entry.get('image', '')))
        label = osp.normpath(osp.join(data_root, entry.get('label', '')))
        cases.append(dict(case_id=case_id(image), image_paths=[image], label_path=label))
    if not cases and osp.isdir(osp.join(data_root, 'imagesTr')):
        folder = osp.join(data_root, 'imagesTr')
        for cid in sorted({case_id(n) for n in os.listdir(folder) if n.endswith(NIFTI_SUFFIXES)}):
            cases.append(dict(case_id=cid, image_paths=[osp.join(folder, cid + ending)],
                              label_path=osp.join(data_root, 'labelsTr', cid + ending)))
    return cases


def _channel_paths(case: dict, num_channels: int, ending: str) -> tuple:
    """(paths to read, expected paths that do not exist, single-file case?)."""
    paths = list(case['image_paths'])
    first = paths[0]
    name = osp.basename(first)
    stem = name[:-len(ending)] if name.endswith(ending) else name
    if len(paths) == 1 and osp.isfile(first) and case_id(first) == stem:
        return paths, [], True  # one (3D or MSD 4D) file
    folder, cid = osp.dirname(first), case['case_id']
    expected = [osp.join(folder, f'{cid}_{c:04d}{ending}') for c in range(num_channels)]
    return ([p for p in expected if osp.isfile(p)], [p for p in expected if not osp.isfile(p)],
            False)


def _allclose(a: Optional[list], b: Optional[list]) -> bool:
    return a is None or b is None or np.allclose(np.asarray(a), np.asarray(b), rtol=1e-5,
                                                 atol=AFFINE_ATOL)


def check_medical(dataset: Any, report: Report, *, workers: int, progress: bool,
                  timer: Timer) -> None:
    """Check a ``MedicalVolumeDataset`` (built with ``lazy_init=True``) into ``report``."""
    data_root = dataset.data_root
    meta_path = osp.join(data_root, 'dataset.json')
    where = report.rel(meta_path)
    try:
        with open(meta_path) as handle:
            meta = json.load(handle)
    except (OSError, ValueError) as err:
        report.error('DATASET_JSON', where, f'cannot read dataset.json ({err}); the MSD / '
                     'nnU-Net layout needs it')
        return
    try:
        dataset.full_init()
        cases = [dict(info) for info in dataset.data_list]  # not get_data_info: no preprocessing
        classes = list(dataset.metainfo['classes'])
        channels = list(dataset.metainfo['channel_names'])
    except Exception as err:  # the dataset class refuses: report it, check every case anyway
        report.error('DATASET_ERROR', where, f'{type(err).__name__}: {err} (every case of '
                     'dataset.json is checked below, whatever the split)')
        cases = _raw_cases(data_root, meta)
        labels = meta.get('labels') or {}
        try:
            by_value = ({int(k): v for k, v in labels.items()} if all(
                str(k).isdigit() for k in labels) else {int(v): k for k, v in labels.items()})
        except (TypeError, ValueError):
            by_value = {}
        classes = [by_value[k] for k in sorted(by_value)]
        raw_channels = meta.get('channel_names') or meta.get('modality') or {}
        channels = [raw_channels[k] for k in sorted(
            raw_channels, key=lambda k: int(k) if str(k).isdigit() else 0)]
    ending = meta.get('file_ending', '.nii.gz')
    if not cases:
        report.error('NO_SAMPLES', where, f'no cases for split {dataset.split!r}; check the '
                     'training list and splits_final.json')
        return

    items, plans = [], []
    for case in cases:
        paths, missing, single = _channel_paths(case, len(channels), ending)
        for path in missing:
            index = int(path[-len(ending) - 4:-len(ending)])
            name = channels[index] if index < len(channels) else '?'
            report.error('MODALITY_MISSING', report.rel(path),
                         f"case {case['case_id']!r} lacks channel {index} ({name!r}) of "
                         f'dataset.json channel_names {channels}; add the file or drop the case')
        plans.append((case, paths, single))
        label = case.get('label_path')
        items.append((tuple(paths), label if label and osp.isfile(label) else None))
    with timer:
        facts = map_files(case_facts, items, workers, 'check-data (medical)', progress)
    report.files += sum(len(p) + (lbl is not None) for p, lbl in items)

    voxels: Counter = Counter()
    in_cases: Counter = Counter()
    rows = []
    for (case, paths, single), fact in zip(plans, facts):
        cid = case['case_id']
        ref = None
        count = 0
        for path, img in zip(paths, fact['images']):
            name = report.rel(path)
            if img['error']:
                report.error('IMAGE_UNREADABLE', name, f"{img['error']}; re-export the volume")
                continue
            shape = img['shape']
            if single:
                count = shape[3] if len(shape) == 4 else 1 if len(shape) == 3 else 0
            else:
                count += 1
            if len(shape) not in (3, 4) or (not single and len(shape) == 4 and shape[3] != 1):
                report.error('IMAGE_NOT_3D', name, f'shape {shape}: each channel file must be '
                             'a 3D volume (X, Y, Z)')
            if img['nonfinite']:
                report.error('IMAGE_NOT_FINITE', name, f"{img['nonfinite']} NaN or infinite "
                             'voxels; replace them (e.g. np.nan_to_num) before training')
            if ref is None:
                ref = (path, img)
            elif shape[:3] != ref[1]['shape'][:3] or not _allclose(img['affine'],
                                                                   ref[1]['affine']):
                report.error('CHANNEL_GRID_MISMATCH', name,
                             f"shape {shape[:3]} / affine differ from channel 0 "
                             f"{report.rel(ref[0])} {ref[1]['shape'][:3]}; resample the channels "
                             'onto one grid')
        if single and ref is not None and count != len(channels):
            report.error('MODALITY_MISSING', report.rel(paths[0]),
                         f'case {cid!r} has {count} channels but dataset.json channel_names '
                         f'lists {len(channels)} ({channels})')
        label_path = case.get('label_path')
        label = fact['label']
        values_text = '-'
        if not label_path or not osp.isfile(label_path):
            report.error('LABEL_MISSING', report.rel(label_path or cid),
                         f'case {cid!r} has no label map; add it or remove the case from the '
                         'training list')
        elif label['error']:
            report.error('LABEL_UNREADABLE', report.rel(label_path),
                         f"{label['error']}; re-export the label map")
        else:
            _check_label(report, label_path, label, ref, classes, voxels, in_cases)
            if label['values']:
                values = sorted(label['values'])
                values_text = ','.join(str(v) for v in values[:8]) + (
                    f',... ({len(values)} values)' if len(values) > 8 else '')
        if ref is not None:
            img = ref[1]
            rows.append([cid, count, 'x'.join(str(n) for n in img['shape'][:3]),
                         'x'.join(f'{z:.2f}' for z in img['spacing']), img['axcodes'],
                         values_text])
    report.table('cases (first channel)', ['case', 'channels', 'shape', 'spacing (mm)',
                                           'orientation', 'label values'], rows)
    orientations = Counter(r[4] for r in rows)
    report.stats.update(cases=len(cases), channel_names=channels, classes=classes,
                        orientations=dict(orientations),
                        class_voxels={str(classes[k]) if k < len(classes) else str(k): v
                                      for k, v in sorted(voxels.items())})
    labelled = sum(1 for f in facts if f['label'] and not f['label']['error'])
    if labelled:
        for index, name in enumerate(classes):
            if not in_cases[index]:
                report.warning('CLASS_ABSENT', where, f'label {index} {name!r} of dataset.json '
                               f'appears in none of the {labelled} label maps')
        report.table('class frequency', ['label', 'name', 'voxels', 'cases'],
                     [[i, n, voxels[i], in_cases[i]] for i, n in enumerate(classes)])


def _check_label(report: Report, path: str, label: Dict[str, Any], ref: Optional[tuple],
                 classes: List[str], voxels: Counter, in_cases: Counter) -> None:
    name = report.rel(path)
    shape = label['shape']
    grid = shape[:3]
    on_grid = len(shape) == 3 or (len(shape) == 4 and shape[3] == 1)
    if not on_grid:
        report.error('LABEL_NOT_3D', name,
                     f'label map has shape {shape} ({len(shape)}D); it must be 3D (X, Y, Z) with '
                     'one class index per voxel: give the segmentation, not an image or a time '
                     'series')
    if ref is not None:
        ref_path, img = ref
        if grid != img['shape'][:3]:
            on_grid = False
            report.error('LABEL_SHAPE_MISMATCH', name,
                         f'label grid {grid} differs from image {report.rel(ref_path)} '
                         f"{img['shape'][:3]}; the label must be on the image grid")
        elif not _allclose(label['affine'], img['affine']):
            diff = float(np.abs(np.asarray(label['affine']) - np.asarray(img['affine'])).max())
            report.error('LABEL_AFFINE_MISMATCH', name,
                         f'label affine differs from image {report.rel(ref_path)} (max '
                         f'difference {diff:.4g} mm); resample the label onto the image grid '
                         '(nearest neighbour) or copy the image affine if it is the same grid')
    if label['nonfinite']:
        report.error('LABEL_NOT_FINITE', name, f"{label['nonfinite']} NaN or infinite voxels in "
                     'a label map; label maps hold class indices only')
    if label['non_integer']:
        report.error('LABEL_NOT_INTEGER', name, f"{label['non_integer']} voxels are not integers "
                     '(an image or a probability map given as label?); a label map holds '
                     f'class indices 0..{len(classes) - 1}')
        return
    values = label['values'] or {}
    unknown = {v: c for v, c in values.items() if not 0 <= v < len(classes)}
    if unknown:
        listing = ', '.join(f'{v} ({c} voxels)' for v, c in sorted(unknown.items())[:8])
        more = len(unknown) - 8
        image_like = ' (an image given as label?)' if len(values) > 4 * len(classes) + 8 else ''
        report.error('LABEL_VALUE_UNKNOWN', name,
                     f"values {listing}{f' and {more} more' if more > 0 else ''} are not labels "
                     f'of dataset.json ({dict(enumerate(classes))}){image_like}; remap them or '
                     'add them to "labels"')
    if not on_grid:
        return  # not counted in the class frequency
    for value, count in values.items():
        if 0 <= value < len(classes):
            voxels[value] += count
            in_cases[value] += 1
