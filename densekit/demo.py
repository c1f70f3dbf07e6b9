"""``densekit demo``: a tour of densekit's tasks on built-in data (what ``make demo`` runs).

Each stage generates its data, trains briefly inside a stated time budget, evaluates, writes
pictures and records its metrics in ``<work_dir>/summary.json`` (task -> metric -> value, plus
``seconds``). Stages use the GPU when there is one. The tour ends by writing
``<work_dir>/index.html`` (:mod:`densekit.analysis.report`): one self-contained page with each
stage's metrics beside its gate, its training curve, its seconds and its pictures.
"""
from __future__ import annotations

import json
import os.path as osp
import time
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional

import torch
from mmengine.config import Config

from densekit.errors import positive_int
from densekit.fileio import atomic_write_text
from densekit.packaged import config_root

CONFIG_DIR = config_root()  # the checkout's configs/ or the installed package data


_BUDGET_OVERRIDE: Optional[int] = None  # run_demo(budget_s=...) while the tour runs


def stage_budget(cpu_s: int, gpu_s: int) -> int:
    """A stage's training time budget in seconds: ``gpu_s`` with a GPU, else ``cpu_s``, unless
    :func:`run_demo` was given ``budget_s`` (``densekit demo --budget``)."""
    if _BUDGET_OVERRIDE is not None:
        return _BUDGET_OVERRIDE
    return gpu_s if torch.cuda.is_available() else cpu_s


def _budget_text(budget_s: int) -> str:
    return f'{budget_s // 60} min' if budget_s >= 60 else f'{budget_s} s'


def _banner(text: str) -> None:
    print(f'\n==== {text} ====', flush=True)


def _device_note() -> str:
    return 'GPU ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'


_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def prepare_stage_config(config: str, work_dir: Path, data_root: Optional[Path], budget_s: int,
                         *, cfg_options: Optional[Mapping[str, object]] = None,
                         max_iters: Optional[int] = None,
                         validate_at_end: Optional[bool] = None) -> Config:
    """The config a demo stage trains, dumped to ``<work_dir>/config.py``.

    ``config`` (relative to :data:`CONFIG_DIR`) is loaded; its three dataloaders read
    ``data_root`` (left alone when None); ``cfg_options`` (dotted keys, e.g. an evaluator's
    ``ann_file``) are merged; ``max_iters`` replaces ``train_cfg.max_iters`` and the end of the
    last param scheduler (if any). The final iteration then validates and writes the one checkpoint.
    Custom hooks that carry a ``budget_s`` get ``budget_s``; a config without one gets a
    ``densekit.TimeBudgetHook`` appended. ``validate_at_end`` is set on the
    ``densekit.TimeCosineLRHook`` hooks when given.

    Raises:
        ValueError: If ``max_iters`` is not a positive int.
    """
    cfg = Config.fromfile(str(CONFIG_DIR / config))
    if data_root is not None:
        cfg.merge_from_dict(_data_root_options(data_root))
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    cfg.work_dir = str(work_dir)
    if max_iters is not None:
        cfg.train_cfg.max_iters = positive_int(max_iters, 'max_iters')
        if cfg.get('param_scheduler'):
            cfg.param_scheduler[-1].end = max_iters
    hooks = list(cfg.get('custom_hooks', []))
    budgeted = [hook for hook in hooks if 'budget_s' in hook]
    for hook in budgeted:
        hook['budget_s'] = budget_s
    if not budgeted:
        hooks.append(dict(type='densekit.TimeBudgetHook', budget_s=budget_s))
    if validate_at_end is not None:
        for hook in hooks:
            if hook['type'] == 'densekit.TimeCosineLRHook':
                hook['validate_at_end'] = validate_at_end
    cfg.custom_hooks = hooks
    cfg.default_hooks.checkpoint.interval = cfg.train_cfg.max_iters  # one final checkpoint
    cfg.train_cfg.val_interval = cfg.train_cfg.max_iters
    cfg.dump(str(work_dir / 'config.py'))
    return cfg


def train_and_evaluate(config: str, work_dir: Path, budget_s: int,
                       cfg_options: Optional[Mapping[str, object]] = None, *,
                       data_root: Optional[Path] = None,
                       ) -> tuple[object, Dict[str, float], str]:
    """Train ``config`` within ``budget_s`` seconds, then test it, writing pictures.

    Returns the finished Runner, the test metrics and the final checkpoint path. This is the
    common body of the seg and det stages; the config is :func:`prepare_stage_config`'s for
    ``data_root`` and ``cfg_options``.
    """
    from densekit import apis

    cfg = prepare_stage_config(config, work_dir, data_root, budget_s, cfg_options=cfg_options)
    runner = apis.train(cfg)
    checkpoint = osp.join(work_dir, f'iter_{runner.iter}.pth')
    metrics = apis.test(cfg, checkpoint, show_dir=str(work_dir / 'pictures'))
    return runner, metrics, checkpoint


def _data_root_options(root: Path) -> Dict[str, object]:
    """``cfg_options`` pointing the three dataloaders at ``root``."""
    return {f'{loader}.dataset.data_root': str(root) for loader in _LOADERS}


def stage_seg(work_dir: Path, data_root: Path) -> Dict[str, float]:
    """Segmentation: Semantic FPN on synthetic shapes; mIoU plus prediction pictures."""
    from densekit.tasks.segmentation import generate_shapes_dataset

    budget_s = stage_budget(360, 120)
    _banner(f'seg: Semantic FPN (densekit.FPN + FPNHead) on built-in shapes; time budget '
            f'{_budget_text(budget_s)} training + ~1 min evaluation ({_device_note()})')
    shapes = generate_shapes_dataset(data_root / 'shapes', num_train=1000, num_val=40)
    runner, metrics, checkpoint = train_and_evaluate(
        'segmentation/fpn_r18-tiny_1xb8-2000i_shapes-128x128.py', work_dir, budget_s,
        data_root=shapes)
    print(f'seg: mIoU {metrics["mIoU"]:.2f} on {len(runner.test_dataloader.dataset)} held-out '
          f'images; checkpoint {checkpoint}; pictures in {work_dir / "pictures"}')
    return {'mIoU': float(metrics['mIoU']), 'aAcc': float(metrics['aAcc']),
            'train_iters': float(runner.iter)}


def stage_det(work_dir: Path, data_root: Path) -> Dict[str, float]:
    """Detection: RetinaNet + densekit.FPN on synthetic shapes; COCO bbox mAP plus pictures."""
    from densekit.tasks.detection import generate_detection_dataset

    budget_s = stage_budget(600, 120)
    _banner(f'det: RetinaNet + densekit.FPN on built-in shapes (COCO json); time budget '
            f'{_budget_text(budget_s)} training + ~1 min evaluation ({_device_note()})')
    coco = generate_detection_dataset(data_root / 'shapes_coco', num_train=300, num_val=50)
    ann = str(coco / 'annotations' / 'instances_val.json')
    runner, metrics, checkpoint = train_and_evaluate(
        'detection/retinanet_r18-half_fpn_1xb8-2000i_shapes-160x160.py', work_dir, budget_s,
        {'val_evaluator.ann_file': ann, 'test_evaluator.ann_file': ann}, data_root=coco)
    print(f'det: bbox mAP@0.5 {metrics["coco/bbox_mAP_50"]:.3f} on '
          f'{len(runner.test_dataloader.dataset)} held-out images; checkpoint {checkpoint}; '
          f'pictures in {work_dir / "pictures"}')
    return {'bbox_mAP_50': float(metrics['coco/bbox_mAP_50']),
            'bbox_mAP': float(metrics['coco/bbox_mAP']), 'train_iters': float(runner.iter)}


def _lazy(module: str, name: str) -> Callable[[Path, Path], Dict[str, float]]:
    """A stage defined in a task package, imported only when it runs."""
    def run(work_dir: Path, data_root: Path) -> Dict[str, float]:
        import importlib

        return getattr(importlib.import_module(module), name)(work_dir, data_root)
    run.__name__ = name
    return run


# The tour, in order. A stage takes (its work dir, the data root) and returns its metrics; it
# must announce its time budget and keep the whole tour within 40 minutes on a 2-core CPU.
STAGES: Dict[str, Callable[[Path, Path], Dict[str, float]]] = {
    'seg': stage_seg,
    'sr': _lazy('densekit.tasks.restoration.demo', 'stage_sr'),
    'derain': _lazy('densekit.tasks.restoration.demo', 'stage_derain'),
    'det': stage_det,
    'medical': _lazy('densekit.tasks.medical3d.demo', 'stage_medical'),
}


def write_summary(path: Path, task: str, metrics: Dict[str, float]) -> Dict[str, dict]:
    """Merge one task's metrics into the JSON summary at ``path`` (atomically)."""
    summary = json.loads(path.read_text()) if path.is_file() else {}
    summary[task] = metrics
    atomic_write_text(json.dumps(summary, indent=2, sort_keys=True), path)
    return summary


def format_summary(summary: Dict[str, dict]) -> str:
    """Render the summary as a table: task | metric | value."""
    lines = [f'{"task":<10} {"metric":<22} {"value":>10}', '-' * 44]
    for task, metrics in summary.items():
        for name, value in metrics.items():
            lines.append(f'{task:<10} {name:<22} {value:>10.4g}')
    return '\n'.join(lines)


def run_demo(task: str = 'all', work_dir: str = 'work_dirs/demo', data_root: str = 'data',
             budget_s: Optional[int] = None) -> Dict[str, dict]:
    """Run one stage or all of them and return the summary.

    ``budget_s`` replaces every stage's training time budget (a quick look; the metrics of a
    short budget are not the README's).

    Raises:
        ValueError: For an unknown task name or a budget that is not a positive int.
    """
    global _BUDGET_OVERRIDE
    if task != 'all' and task not in STAGES:
        raise ValueError(f'unknown demo task {task!r}; choose from {sorted(STAGES)} or all')
    if budget_s is not None:
        positive_int(budget_s, 'budget_s')
    previous, _BUDGET_OVERRIDE = _BUDGET_OVERRIDE, budget_s
    try:
        return _run_stages(task, Path(work_dir), data_root)
    finally:
        _BUDGET_OVERRIDE = previous


def _run_stages(task: str, root: Path, data_root: str) -> Dict[str, dict]:
    names = list(STAGES) if task == 'all' else [task]
    print(f'densekit demo: stages {names}, work dir {root}, data in {data_root}', flush=True)
    summary: Dict[str, dict] = {}
    for name in names:
        start = time.perf_counter()
        stage_dir = root / name
        stage_dir.mkdir(parents=True, exist_ok=True)
        metrics = STAGES[name](stage_dir, Path(data_root))
        metrics['seconds'] = round(time.perf_counter() - start, 1)
        summary = write_summary(root / 'summary.json', name, metrics)
    _banner(f'summary ({root / "summary.json"})')
    print(format_summary(summary), flush=True)
    from densekit.analysis.report import write_report

    page = write_report(root, summary, stages=list(STAGES))
    print(f'report: {page} (open it in a browser: xdg-open {page}, or file://{page.resolve()})',
          flush=True)
    return summary
