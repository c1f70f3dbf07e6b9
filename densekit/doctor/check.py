"""``densekit check-data``: build a config's dataset with its own class and examine every file.

The dataset is built from ``cfg.<split>_dataloader.dataset`` by mmengine's registry in the
config's default scope, with ``lazy_init=True`` and no pipeline; its file lists, metainfo and
settings (``data_root``, ``data_prefix``, ``reduce_zero_label``, ``scale``...) say where the
files are, and the files are then opened in worker processes. The task family follows from
the dataset class: an mmseg ``BaseSegDataset``, an mmdet ``CocoDataset``, densekit's
``MedicalVolumeDataset`` or ``PairedImageDataset``.
"""
from __future__ import annotations

import copy
import os
import os.path as osp
from typing import Any, List, Optional, Tuple

from densekit.doctor.report import Report, Timer, default_workers
from densekit.errors import positive_int

__all__ = ['check_data', 'SPLITS']

SPLITS = ('train', 'val', 'test')
_WRAPPERS = ('RepeatDataset', 'ClassBalancedDataset', 'MultiImageMixDataset')


def _dataset_cfg(cfg: Any, split: str) -> dict:
    key = f'{split}_dataloader'
    loader = cfg.get(key)
    if not loader or not loader.get('dataset'):
        have = [s for s in SPLITS if cfg.get(f'{s}_dataloader')]
        raise ValueError(f'--split {split}: the config has no {key}.dataset; splits it '
                         f'defines: {", ".join(have) or "none"}')
    dataset_cfg = copy.deepcopy(loader['dataset'])
    while str(dataset_cfg.get('type', '')).split('.')[-1] in _WRAPPERS:
        dataset_cfg = copy.deepcopy(dataset_cfg['dataset'])
    if str(dataset_cfg.get('type', '')).split('.')[-1] == 'ConcatDataset':
        raise ValueError(f'{key}.dataset is a ConcatDataset; check each of its datasets with '
                         'its own config')
    return dataset_cfg


def _build(dataset_cfg: dict, scope: str) -> Any:
    from mmengine.registry import DATASETS, init_default_scope

    init_default_scope(scope)
    built = dict(dataset_cfg, lazy_init=True, pipeline=[])
    return DATASETS.build(built)


def model_num_classes(cfg: Any) -> List[Tuple[str, int]]:
    """``(dotted key, value)`` of every ``num_classes`` under ``cfg.model`` (RPN heads aside)."""
    found: List[Tuple[str, int]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                sub = f'{path}.{key}'
                if key == 'num_classes' and isinstance(value, int) and 'rpn_head' not in path:
                    found.append((sub, value))
                else:
                    walk(value, sub)
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f'{path}.{i}')

    walk(cfg.get('model') or {}, 'model')
    return found


def _check_model_classes(cfg: Any, report: Report, num_classes: int, task: str,
                         config: str) -> None:
    for key, value in model_num_classes(cfg):
        # mmseg's binary heads may predict 1 channel for 2 classes (use_sigmoid)
        if value != num_classes and not (task == 'seg' and value == 1 and num_classes == 2):
            report.error('MODEL_NUM_CLASSES', config,
                         f'{key}={value} but the dataset has {num_classes} classes; set '
                         f'{key}={num_classes} (or change the dataset classes)')


def check_data(config: str, split: str = 'train', *, out: Optional[str] = None,
               workers: Optional[int] = None, cfg_options: Optional[dict] = None,
               fix_palette: Optional[str] = None, progress: bool = True) -> Report:
    """Examine the dataset of ``config``'s ``split`` and return the report.

    Args:
        config: Config file path.
        split: ``'train'``, ``'val'`` or ``'test'`` (``cfg.<split>_dataloader.dataset``).
        out: Also write the report as JSON to this path.
        workers: Reader processes (default ``min(4, cpu count)``; 1 reads in this process).
        cfg_options: Config overrides (as ``--cfg-options``).
        fix_palette: Segmentation: write index masks of RGB colour masks into this folder.
        progress: Show a tqdm progress bar.

    Raises:
        ValueError: An unknown split, a bad ``workers`` value, a dataset class the doctor does
            not know, or a ``fix_palette`` folder that is the label folder.
    """
    from mmdet.datasets import CocoDataset
    from mmseg.datasets import BaseSegDataset

    from densekit.apis import load_config
    from densekit.tasks.medical3d.dataset import MedicalVolumeDataset
    from densekit.tasks.restoration.dataset import PairedImageDataset

    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    workers = default_workers() if workers is None else workers
    positive_int(workers, 'workers')
    cfg = load_config(config, cfg_options)
    dataset_cfg = _dataset_cfg(cfg, split)
    dataset = _build(dataset_cfg, cfg.get('default_scope', 'densekit'))
    if isinstance(dataset, BaseSegDataset):
        task = 'seg'
    elif isinstance(dataset, CocoDataset):
        task = 'det'
    elif isinstance(dataset, MedicalVolumeDataset):
        task = 'medical'
    elif isinstance(dataset, PairedImageDataset):
        task = 'restoration'
    else:
        raise ValueError(f'check-data does not know dataset class {type(dataset).__name__} '
                         '(it reads mmseg BaseSegDataset, mmdet CocoDataset, '
                         'MedicalVolumeDataset and PairedImageDataset datasets)')
    if fix_palette and task != 'seg':
        raise ValueError(f'--fix-palette is for segmentation datasets; this is a {task} dataset')
    report = Report(config=str(config), split=split, task=task, dataset=type(dataset).__name__,
                    data_root=str(dataset.data_root or ''), workers=workers)
    timer = Timer()
    common = dict(workers=workers, progress=progress, timer=timer)
    if dataset.data_root and not osp.isdir(dataset.data_root):
        report.error('DATA_ROOT_MISSING', str(dataset.data_root),
                     f'data_root does not exist (relative to {os.getcwd()}); generate or '
                     'download the data there, or point the config at it with --cfg-options '
                     f'{split}_dataloader.dataset.data_root=DIR')
    elif task == 'seg':
        from densekit.doctor.seg import check_segmentation
        _check_model_classes(cfg, report, len(dataset.metainfo.get('classes') or ()), task,
                             str(config))
        check_segmentation(dataset, dataset_cfg, report, fix_palette=fix_palette, **common)
    elif task == 'det':
        from densekit.doctor.det import check_detection
        _check_model_classes(cfg, report, len(dataset.metainfo.get('classes') or ()), task,
                             str(config))
        check_detection(dataset, dataset_cfg, report, **common)
    elif task == 'medical':
        from densekit.doctor.medical import check_medical
        check_medical(dataset, report, **common)
        if 'classes' in dataset.metainfo:
            _check_model_classes(cfg, report, len(dataset.metainfo['classes']), task,
                                 str(config))
    else:
        from densekit.doctor.restoration import check_restoration
        check_restoration(dataset, dataset_cfg, report, **common)
    report.seconds = timer.seconds
    report.sort()
    if out:
        report.write_json(out)
    return report
