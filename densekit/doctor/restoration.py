"""Restoration checks (paired folders): inputs without targets and targets without inputs,
input sizes that do not fit the scale, targets smaller than the training patch, unreadable
images.

Pairs are matched with the dataset's own name mapping (``lq_template``) and size rule (an input
is ``target // scale`` on each side), as :class:`PairedImageDataset` does; it stops at the
first problem.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Optional

from densekit.doctor.readers import pair_facts
from densekit.doctor.report import Report, Timer, map_files
from densekit.tasks.restoration.dataset import list_images

__all__ = ['check_restoration']


def _patch_size(dataset_cfg: dict) -> Optional[int]:
    for step in dataset_cfg.get('pipeline') or ():
        if isinstance(step, dict) and str(step.get('type', '')).endswith('PairedRandomCrop'):
            size = step.get('gt_patch_size')
            return int(size) if isinstance(size, int) else None
    return None


def check_restoration(dataset: Any, dataset_cfg: dict, report: Report, *, workers: int,
                      progress: bool, timer: Timer) -> None:
    """Check a ``PairedImageDataset`` (built with ``lazy_init=True``) into ``report``."""
    scale = dataset.scale
    gt_dir = dataset.data_prefix['gt']
    lq_dir = dataset.data_prefix.get('lq')
    gt_names, lq_names = [], []
    for folder, names, what in ((gt_dir, gt_names, 'target'), (lq_dir, lq_names, 'input')):
        if folder is None:
            continue
        try:
            names += list_images(folder)
        except FileNotFoundError:
            report.error('FOLDER_MISSING', report.rel(folder), f'{what} folder not found; check '
                         'data_root and data_prefix')
    if not gt_names:
        if osp.isdir(gt_dir):
            report.error('NO_SAMPLES', report.rel(gt_dir), 'no images in the target folder')
        return
    pairs = []
    if lq_dir is None:
        pairs = [(None, osp.join(gt_dir, name)) for name in gt_names]
    else:
        lq_set = set(lq_names)
        partner = {dataset._lq_name(name): name for name in gt_names}
        for name in sorted(lq_set - set(partner)):
            expected = report.rel(osp.join(gt_dir, dataset._gt_name(name)))
            report.error('GT_MISSING', report.rel(osp.join(lq_dir, name)),
                         f'input has no target: {expected} does not exist; add it or remove '
                         'the input')
        for name in gt_names:
            lq_path = osp.join(lq_dir, dataset._lq_name(name))
            if dataset._lq_name(name) not in lq_set:
                report.error('LQ_MISSING', report.rel(osp.join(gt_dir, name)),
                             f'target has no input: {report.rel(lq_path)} does not exist'
                             + (f" (lq_template={dataset.lq_template!r})"
                                if dataset.lq_template != '{}' else '')
                             + '; add it or remove the target')
                continue
            pairs.append((lq_path, osp.join(gt_dir, name)))
    with timer:
        facts = map_files(pair_facts, pairs, workers, 'check-data (restoration)', progress)
    report.files += sum(1 + (lq is not None) for lq, _ in pairs)
    patch = _patch_size(dataset_cfg) if not dataset.test_mode else None
    sizes = []
    for (lq_path, gt_path), fact in zip(pairs, facts):
        gt, lq = fact['gt'], fact['lq']
        for path, item in ((gt_path, gt), (lq_path, lq)):
            if item is not None and item['error']:
                report.error('IMAGE_UNREADABLE', report.rel(path), f"{item['error']}; "
                             're-export or remove the image')
        if gt['error'] or (lq is not None and lq['error']):
            continue
        (gh, gw) = gt['shape']
        sizes.append((gh, gw))
        if lq is not None and lq['shape'] != (gh // scale, gw // scale):
            lh, lw = lq['shape']
            report.error('SCALE_MISMATCH', report.rel(lq_path),
                         f'input is {lh}x{lw} but target {report.rel(gt_path)} is {gh}x{gw} '
                         f'(HxW); at scale {scale} the input must be {gh // scale}x{gw // scale}:'
                         ' check scale / the LR folder, or mod-crop the target to a multiple '
                         f'of {scale}')
        if patch and min(gh, gw) < patch:
            report.error('GT_SMALLER_THAN_PATCH', report.rel(gt_path),
                         f'target is {gh}x{gw} but PairedRandomCrop takes {patch}x{patch} '
                         'patches; drop the image or lower gt_patch_size')
    if sizes:
        hs, ws = [s[0] for s in sizes], [s[1] for s in sizes]
        report.table('pairs', ['pairs', 'scale', 'target H min..max', 'target W min..max'],
                     [[len(sizes), scale, f'{min(hs)}..{max(hs)}', f'{min(ws)}..{max(ws)}']])
    report.stats.update(pairs=len(pairs), scale=scale, targets=len(gt_names),
                        inputs=len(lq_names))
