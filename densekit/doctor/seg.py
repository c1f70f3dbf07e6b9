"""Segmentation checks: label values, 0/255 and colour masks, pairs, sizes, class frequency.

Label maps are decoded as mmseg's ``LoadAnnotations`` decodes them (Pillow, unchanged, cast
to uint8), then ``reduce_zero_label`` and the dataset's ``label_map`` are applied, so the
values checked are the values training sees. Valid values are ``0 .. num_classes - 1`` and
``ignore_index``.
"""
from __future__ import annotations

import os
import os.path as osp
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence

from densekit.doctor.readers import palette_to_index, seg_pair_facts
from densekit.doctor.report import Report, Timer, map_files

__all__ = ['check_segmentation']

BACKGROUND_NAMES = ('background', 'bg', 'backgroud', '_background_', 'unlabeled', 'unlabelled',
                    'void', 'others', 'other')
LOSSY_SUFFIXES = ('.jpg', '.jpeg', '.jpe', '.jfif')


def _effective(values: Dict[int, int], reduce_zero_label: bool,
               label_map: Optional[Dict[int, int]]) -> Dict[int, int]:
    """Raw value -> pixels turned into the values training sees (uint8 cast, reduce, map)."""
    out: Counter = Counter()
    for raw, count in values.items():
        value = raw & 255  # mmseg casts the decoded map to uint8
        if reduce_zero_label:
            value = 255 if value in (0, 255) else value - 1
        if label_map:
            value = label_map.get(value, value)
        out[value] += count
    return dict(out)


def _listing(counts: Dict[int, int], limit: int = 8) -> str:
    items = sorted(counts.items(), key=lambda kv: -kv[1])
    text = ', '.join(f'{v} ({c} px)' for v, c in items[:limit])
    return text + (f' and {len(items) - limit} more' if len(items) > limit else '')


def _pipeline_reduce_zero_label(dataset_cfg: dict) -> Optional[bool]:
    for step in dataset_cfg.get('pipeline') or ():
        if isinstance(step, dict) and str(step.get('type', '')).endswith('LoadAnnotations') \
                and step.get('reduce_zero_label') is not None:
            return bool(step['reduce_zero_label'])
    return None


def _orphan_labels(dataset: Any, data_list: Sequence[dict]) -> List[tuple]:
    """Label files in the label folder that no listed image points at: (label, image)."""
    img_dir = dataset.data_prefix.get('img_path')
    ann_dir = dataset.data_prefix.get('seg_map_path')
    if not ann_dir or not osp.isdir(ann_dir) or (dataset.ann_file
                                                 and osp.isfile(dataset.ann_file)):
        return []
    listed = {osp.normpath(d['seg_map_path']) for d in data_list if d.get('seg_map_path')}
    suffix = dataset.seg_map_suffix
    orphans = []
    for folder, _, names in os.walk(ann_dir):
        for name in sorted(names):
            if not name.endswith(suffix):
                continue
            path = osp.normpath(osp.join(folder, name))
            if path not in listed:
                rel = osp.relpath(path, ann_dir)[:-len(suffix)]
                orphans.append((path, osp.join(img_dir or '', rel + dataset.img_suffix)))
    return sorted(orphans)


def check_segmentation(dataset: Any, dataset_cfg: dict, report: Report, *, workers: int,
                       progress: bool, timer: Timer, fix_palette: Optional[str] = None) -> None:
    """Check an mmseg ``BaseSegDataset`` (built with ``lazy_init=True``) into ``report``."""
    classes = tuple(dataset.metainfo.get('classes') or ())
    num_classes = len(classes)
    ignore = int(dataset.ignore_index)
    reduce = bool(dataset.reduce_zero_label)
    label_map = dataset.label_map or None
    palette = [tuple(int(c) for c in colour) for colour in dataset.metainfo.get('palette') or ()]
    lookup = {colour: i for i, colour in enumerate(palette)}
    ann_dir = dataset.data_prefix.get('seg_map_path') or ''
    where = report.rel(ann_dir) or report.rel(dataset.data_root or '')

    in_pipeline = _pipeline_reduce_zero_label(dataset_cfg)
    if in_pipeline is not None and in_pipeline != reduce:
        report.error('REDUCE_ZERO_LABEL_CONFLICT', where,
                     f'the pipeline\'s LoadAnnotations has reduce_zero_label={in_pipeline} but '
                     f'the dataset has reduce_zero_label={reduce} (mmseg asserts on the first '
                     f'sample); set it on the dataset only')
    if fix_palette and ann_dir and osp.abspath(fix_palette) == osp.abspath(ann_dir):
        raise ValueError(f'--fix-palette {fix_palette!r} is the label folder itself; give a '
                         'new folder (inputs are never overwritten)')
    try:
        dataset.full_init()
    except Exception as err:  # the dataset class refuses the folder: report it and stop
        report.error('DATASET_ERROR', where, f'{type(err).__name__}: {err}')
        return
    data_list = [dataset.get_data_info(i) for i in range(len(dataset))]
    if not data_list:
        report.error('NO_SAMPLES', report.rel(dataset.data_prefix.get('img_path') or ''),
                     f'no images ending in {dataset.img_suffix!r} found; check data_root, '
                     'data_prefix.img_path and img_suffix')
    for label, image in _orphan_labels(dataset, data_list):
        report.error('IMAGE_MISSING', report.rel(label),
                     f'label map has no image: {report.rel(image)} does not exist; add the '
                     'image or remove the label')

    items = [(d['img_path'], d.get('seg_map_path')) for d in data_list]
    with timer:
        facts = map_files(seg_pair_facts, items, workers, 'check-data (seg)', progress)
    report.files += sum(1 + (label is not None) for _, label in items)

    pixels: Counter = Counter()
    images: Counter = Counter()
    raw_values: Counter = Counter()
    out_of_range: Counter = Counter()
    colour_totals: Counter = Counter()
    rgb_masks: List[str] = []
    files_with_zero = readable_labels = 0
    binary_files: List[str] = []
    for (img_path, seg_path), fact in zip(items, facts):
        image, label = fact['image'], fact['label']
        if image['error'] == 'no such file':
            report.error('IMAGE_MISSING', report.rel(img_path), 'image file not found')
        elif image['error']:
            report.error('IMAGE_UNREADABLE', report.rel(img_path),
                         f"{image['error']}; re-export or remove the image")
        if seg_path is None:
            continue
        seg = report.rel(seg_path)
        if label['error'] == 'no such file':
            report.error('LABEL_MISSING', seg, f'image {report.rel(img_path)} has no label map; '
                         'add it or remove the image')
            continue
        if label['error']:
            report.error('LABEL_UNREADABLE', seg, f"{label['error']}; re-export the label map "
                         'as PNG')
            continue
        readable_labels += 1
        if seg_path.lower().endswith(LOSSY_SUFFIXES):
            report.warning('LABEL_LOSSY_FORMAT', seg, 'JPEG compression changes label values '
                           'along edges; save label maps as PNG')
        if image['shape'] and label['shape'] and image['shape'] != label['shape']:
            report.error('SIZE_MISMATCH', seg,
                         f"label is {label['shape'][0]}x{label['shape'][1]} but image "
                         f"{report.rel(img_path)} is {image['shape'][0]}x{image['shape'][1]} "
                         '(HxW); they must be the same size')
        if label['colours'] is not None:
            rgb_masks.append(seg_path)
            for r, g, b, count in label['colours']:
                colour_totals[(r, g, b)] += count
                if (r, g, b) in lookup:  # counted as the class its palette colour stands for
                    pixels[lookup[(r, g, b)]] += count
                    images[lookup[(r, g, b)]] += 1
            shown = ', '.join(f'({r},{g},{b})' for r, g, b, _ in label['colours'][:6])
            more = label['num_colours'] - min(6, label['num_colours'])
            in_palette = sum((r, g, b) in palette for r, g, b, _ in label['colours'])
            report.error('RGB_MASK', seg,
                         f"colour mask ({label['mode']}, {label['num_colours']} colours: {shown}"
                         f"{f' and {more} more' if more else ''}; {in_palette} of them in the "
                         'palette) where class indices are needed; convert it with '
                         '`densekit check-data CONFIG --fix-palette OUT_DIR` (palette colour i '
                         '-> class i) and point seg_map_path at OUT_DIR')
            continue
        if label['channels'] > 1:
            report.error('LABEL_NOT_SINGLE_CHANNEL', seg,
                         f"label map has {label['channels']} equal channels ({label['mode']}); "
                         "save it single-channel, e.g. Image.open(f).convert('L').save(out)")
        values = label['values']
        raw_values.update(values)
        files_with_zero += 0 in values
        over = {v: c for v, c in values.items() if v > 255}
        if over:
            report.error('LABEL_OVERFLOW', seg,
                         f'values above 255: {_listing(over)}; mmseg casts label maps to uint8 '
                         'so they wrap around; keep labels below 256')
        if set(values) <= {0, 255} and 255 in values:
            binary_files.append(seg)
            if ignore != 255:
                report.error('BINARY_MASK_0_255', seg,
                             f'binary mask stored as 0/255 (255: {values[255]} px); classes must '
                             'be indices 0/1: save label // 255 (e.g. Image.fromarray((np.array('
                             'Image.open(f)) // 255).astype(np.uint8)).save(out))')
                continue
        effective = _effective(values, reduce, label_map)
        bad = {v: c for v, c in effective.items() if not (0 <= v < num_classes or v == ignore)}
        if bad:
            out_of_range.update(bad)
            report.error('LABEL_OUT_OF_RANGE', seg,
                         f'values {_listing(bad)} are outside 0..{num_classes - 1} '
                         f'({num_classes} classes) and ignore_index {ignore}'
                         f"{' (after reduce_zero_label)' if reduce else ''}; remap them to a "
                         'class or to ignore_index, or add the classes to metainfo')
        for value, count in effective.items():
            if 0 <= value < num_classes:
                pixels[value] += count
                images[value] += 1

    if binary_files and len(binary_files) == readable_labels and ignore == 255:
        report.error('BINARY_MASK_0_255', where,
                     f'all {len(binary_files)} label maps hold only 0 and 255, and 255 is '
                     'ignore_index: the foreground is ignored in training; save label // 255 '
                     '(class indices 0/1), e.g. Image.fromarray((np.array(Image.open(f)) // '
                     '255).astype(np.uint8)).save(out)')
    elif ignore == 255:
        for seg in binary_files:
            report.warning('BINARY_MASK_0_255', seg,
                           'holds only 0 and 255 (= ignore_index) while other label maps hold '
                           'classes: if 255 is meant as foreground, save label // 255')
    _zero_label_hints(report, where, classes, reduce, raw_values, out_of_range,
                      files_with_zero, readable_labels)
    if readable_labels:
        for index, name in enumerate(classes):
            if not pixels[index]:
                report.warning('CLASS_ABSENT', where,
                               f'class {index} {name!r} never appears in the {readable_labels} '
                               'label maps; check the label values or drop the class')
    total = sum(pixels.values()) or 1
    rows = [[i, name, pixels[i], f'{100 * pixels[i] / total:.2f}', images[i]]
            for i, name in enumerate(classes)]
    report.table('class frequency', ['class', 'name', 'pixels', '% pixels', 'images'], rows)
    report.stats['classes'] = [dict(index=i, name=name, pixels=pixels[i], images=images[i])
                               for i, name in enumerate(classes)]
    report.stats.update(samples=len(data_list), num_classes=num_classes, ignore_index=ignore,
                        reduce_zero_label=reduce,
                        raw_label_values={str(k): v for k, v in sorted(raw_values.items())})
    if rgb_masks:
        report.table('colours of RGB masks', ['colour (r,g,b)', 'pixels', 'palette class'],
                     [[f'({r},{g},{b})', count, lookup.get((r, g, b), '-')]
                      for (r, g, b), count in colour_totals.most_common(32)])
        if fix_palette:
            _fix_palette(report, rgb_masks, ann_dir, fix_palette, palette, ignore, workers,
                         progress)


def _zero_label_hints(report: Report, where: str, classes: Sequence[str], reduce: bool,
                      raw_values: Counter, out_of_range: Counter, files_with_zero: int,
                      readable: int) -> None:
    num_classes = len(classes)
    if not readable:
        return
    first = str(classes[0]).lower() if classes else ''
    if not reduce and set(out_of_range) == {num_classes} and files_with_zero:
        report.warning('REDUCE_ZERO_LABEL_HINT', where,
                       f'label values run 0..{num_classes} for {num_classes} classes: if 0 means '
                       '"unlabelled", set reduce_zero_label=True on the dataset (0 -> ignore, '
                       f'1..{num_classes} -> 0..{num_classes - 1})')
    elif reduce and first in BACKGROUND_NAMES and raw_values.get(0):
        report.warning('REDUCE_ZERO_LABEL_HINT', where,
                       f'reduce_zero_label=True turns raw 0 into ignore, but class 0 is '
                       f'{classes[0]!r}: its pixels are not trained; set reduce_zero_label=False '
                       'if 0 is a real class')
    elif reduce and not raw_values.get(0):
        report.warning('REDUCE_ZERO_LABEL_HINT', where,
                       'reduce_zero_label=True but no pixel is 0, so no pixel is "unlabelled" '
                       'and every class shifts down by one; if the labels are already '
                       '0-based set reduce_zero_label=False')


def _fix_palette(report: Report, masks: Sequence[str], ann_dir: str, out_dir: str,
                 palette: Sequence[tuple], ignore: int, workers: int, progress: bool) -> None:
    if not palette:
        report.error('NO_PALETTE', report.rel(ann_dir), '--fix-palette needs metainfo palette '
                     '(colour i -> class i); add palette=[...] to the dataset metainfo')
        return
    root = ann_dir if ann_dir else osp.commonpath(list(masks))
    items = [(src, osp.join(out_dir, osp.splitext(osp.relpath(src, root))[0] + '.png'),
              tuple(palette), ignore) for src in masks]
    results = map_files(palette_to_index, items, workers, 'fix-palette', progress)
    written = 0
    for (src, _, _, _), result in zip(items, results):
        if result['error']:
            report.error('FIX_PALETTE_FAILED', report.rel(src), result['error'])
            continue
        written += 1
        if result['unmatched']:
            report.warning('PALETTE_UNMATCHED', report.rel(src),
                           f"{result['unmatched']} px have colours not in the palette; written "
                           f"as ignore_index {ignore} in {result['dst']}")
    report.stats['fix_palette'] = dict(out_dir=out_dir, written=written)
