"""Detection checks on a COCO annotation file: every annotation error at once, categories
against the config's classes, images without boxes, image files and box size statistics.

The per-annotation checks are :func:`densekit.tasks.detection.dataset.annotation_problems`,
the ones ``densekit.CocoDataset`` raises on (it stops at the first).
"""
from __future__ import annotations

import json
import os.path as osp
from collections import Counter, defaultdict
from typing import Any, Dict, List

import numpy as np

from densekit.doctor.readers import image_facts
from densekit.doctor.report import Report, Timer, map_files
from densekit.tasks.detection.dataset import annotation_problems

__all__ = ['check_detection']

SMALL, MEDIUM = 32 ** 2, 96 ** 2  # COCO's area ranges


def _load(report: Report, ann_file: str) -> Any:
    where = report.rel(ann_file)
    if not osp.isfile(ann_file):
        report.error('ANN_FILE_MISSING', where, 'annotation file not found; check data_root '
                     'and ann_file')
        return None
    try:
        with open(ann_file) as handle:
            coco = json.load(handle)
    except (OSError, ValueError) as err:
        report.error('ANN_FILE_UNREADABLE', where, f'not valid JSON ({err}); re-export it')
        return None
    missing = [k for k in ('images', 'annotations', 'categories')
               if not isinstance(coco, dict) or not isinstance(coco.get(k), list)]
    if missing:
        report.error('ANN_FILE_INVALID', where, f'a COCO file needs the lists {missing}; '
                     're-export it in COCO format')
        return None
    return coco


def check_detection(dataset: Any, dataset_cfg: dict, report: Report, *, workers: int,
                    progress: bool, timer: Timer) -> None:
    """Check an mmdet ``CocoDataset`` (built with ``lazy_init=True``) into ``report``."""
    ann_file = dataset.ann_file
    where = report.rel(ann_file)
    classes = tuple(dataset.metainfo.get('classes') or ())
    coco = _load(report, ann_file)
    if coco is None:
        return

    cat_by_id: Dict[Any, str] = {}
    for cat in coco['categories']:
        if not isinstance(cat, dict) or 'id' not in cat or 'name' not in cat:
            report.error('CATEGORY_INVALID', where, f'category {cat!r} needs "id" and "name"')
            continue
        if cat['id'] in cat_by_id:
            report.error('DUPLICATE_CATEGORY_ID', where, f"category id {cat['id']} is used by "
                         f"{cat_by_id[cat['id']]!r} and {cat['name']!r}; give each its own id")
        cat_by_id[cat['id']] = cat['name']
    cat_ids = [cid for cid, name in cat_by_id.items() if name in classes]
    anns_per_cat = Counter(a.get('category_id') for a in coco['annotations']
                           if isinstance(a, dict))
    for cid, name in cat_by_id.items():
        if name not in classes:
            report.error('CATEGORY_NOT_IN_CLASSES', where,
                         f'category {name!r} (id {cid}, {anns_per_cat[cid]} annotations) is not '
                         f'in the config classes {classes}; add it to metainfo=dict(classes=...) '
                         'of the dataset or remove its annotations')
    names = set(cat_by_id.values())
    absent = [c for c in classes if c not in names]
    if absent and not cat_ids:
        report.error('NO_MATCHING_CATEGORIES', where,
                     f'none of the config classes {classes} is a category of this file '
                     f'({sorted(names)}): pass metainfo=dict(classes=...) with the file\'s '
                     'category names to the dataset')
    else:
        for name in absent:
            report.warning('CLASS_NOT_IN_CATEGORIES', where,
                           f'config class {name!r} is not a category of this file: it has no '
                           'training data')

    images: Dict[Any, dict] = {}
    for info in coco['images']:
        if not isinstance(info, dict) or 'id' not in info:
            report.error('IMAGE_INFO_INVALID', where, f'image entry {info!r} has no "id"')
            continue
        bad = [k for k in ('file_name', 'width', 'height') if k not in info]
        if bad:
            report.error('IMAGE_INFO_INVALID', where,
                         f"image id {info['id']} lacks {bad}; every image needs file_name, "
                         'width and height')
        if info['id'] in images:
            report.error('DUPLICATE_IMAGE_ID', where, f"image id {info['id']} appears twice "
                         f"({images[info['id']].get('file_name')!r}, {info.get('file_name')!r})")
        images[info['id']] = info

    seen_ann: set = set()
    boxes: Dict[Any, int] = Counter()
    sizes: Dict[str, List[tuple]] = defaultdict(list)
    for ann in coco['annotations']:
        if not isinstance(ann, dict):
            report.error('ANNOTATION_INVALID', where, f'annotation {ann!r} is not an object')
            continue
        aid = ann.get('id')
        if aid in seen_ann:
            report.error('DUPLICATE_ANN_ID', where, f'annotation id {aid} appears twice '
                         '(mmdet refuses non-unique ids); renumber the annotations')
        seen_ann.add(aid)
        info = images.get(ann.get('image_id'))
        if info is None:
            report.error('ANN_IMAGE_UNKNOWN', where,
                         f"annotation id {aid}: image_id {ann.get('image_id')!r} is not an image "
                         'of the file; fix the image_id or remove the annotation')
            continue
        if ann.get('ignore', False):
            continue
        problems = annotation_problems(info, ann, cat_ids, classes)
        for code, message in problems:
            if code == 'CATEGORY_UNKNOWN' and ann.get('category_id') in cat_by_id:
                continue  # a category of the file left out of classes: reported once above
            report.error(code, where, f"annotation id {aid} of image "
                         f"{info.get('file_name')!r}: {message}; fix or remove it")
        if problems or ann.get('iscrowd', 0):
            continue
        boxes[info['id']] += 1
        _, _, w, h = (float(v) for v in ann['bbox'])
        sizes[cat_by_id[ann['category_id']]].append((w, h))

    filter_cfg = dataset.filter_cfg or {}
    dropped = filter_cfg.get('filter_empty_gt', False) and not dataset.test_mode
    prefix = dataset.data_prefix.get('img', '') or ''
    listed = [info for info in images.values() if 'file_name' in info]
    for info in listed:
        if not boxes[info['id']]:
            report.warning('NO_BOXES', report.rel(osp.join(prefix, info['file_name'])),
                           f"image id {info['id']} has no valid boxes"
                           + ('; filter_cfg.filter_empty_gt drops it from training'
                              if dropped else ''))

    paths = [osp.join(prefix, info['file_name']) for info in listed]
    with timer:
        facts = map_files(image_facts, paths, workers, 'check-data (det)', progress)
    report.files += len(paths) + 1
    for info, path, fact in zip(listed, paths, facts):
        if fact['error'] == 'no such file':
            report.error('IMAGE_MISSING', report.rel(path), f"image id {info['id']} of {where} "
                         'not found; check data_prefix.img or the file_name')
        elif fact['error']:
            report.error('IMAGE_UNREADABLE', report.rel(path), f"{fact['error']}; re-export or "
                         'remove the image')
        elif fact['shape'] != (info.get('height'), info.get('width')):
            report.error('IMAGE_SIZE_MISMATCH', report.rel(path),
                         f"the file is {fact['shape'][0]}x{fact['shape'][1]} (HxW) but {where} "
                         f"says {info.get('height')}x{info.get('width')}; fix width/height in "
                         'the annotation file')
    _box_table(report, classes, sizes, len(listed), sum(boxes.values()))


def _box_table(report: Report, classes: tuple, sizes: Dict[str, List[tuple]], num_images: int,
               num_boxes: int) -> None:
    rows, stats = [], []
    for name in classes:
        wh = np.asarray(sizes.get(name) or np.zeros((0, 2)), np.float64).reshape(-1, 2)
        area = wh[:, 0] * wh[:, 1]
        side = np.sqrt(area)
        entry = dict(name=name, boxes=int(len(wh)),
                     small=int((area < SMALL).sum()),
                     medium=int(((area >= SMALL) & (area < MEDIUM)).sum()),
                     large=int((area >= MEDIUM).sum()))
        if len(wh):
            entry.update(side_min=round(float(side.min()), 1),
                         side_median=round(float(np.median(side)), 1),
                         side_max=round(float(side.max()), 1),
                         aspect_median=round(float(np.median(wh[:, 0] / wh[:, 1])), 2))
        stats.append(entry)
        rows.append([name, entry['boxes'], entry.get('side_min', '-'),
                     entry.get('side_median', '-'), entry.get('side_max', '-'),
                     entry.get('aspect_median', '-'), entry['small'], entry['medium'],
                     entry['large']])
    report.table('boxes per class (side = sqrt(w*h) px)',
                 ['class', 'boxes', 'side min', 'side median', 'side max', 'w/h median',
                  'small', 'medium', 'large'], rows)
    report.stats.update(images=num_images, boxes=num_boxes, classes=stats)
