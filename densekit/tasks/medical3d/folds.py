"""``densekit evaluate-folds``: per-fold and mean Dice / HD95 of cross-validation runs on each
fold's own held-out cases, and nnU-Net's per-class post-processing decision.

Each work dir is one ``densekit train CONFIG --fold K`` run: its dumped config names the fold
and the splits file, ``last_checkpoint`` (or the newest ``iter_*.pth``) the weights. Every
held-out case of that fold is segmented in network space (as validation does), scored, and
kept for :func:`~.postprocess.decide_postprocessing` over all folds together. The decision
(classes whose largest connected component alone is kept) is written into the config's
``plans_file`` (``postprocessing``), where ``densekit infer`` reads it.
"""
from __future__ import annotations

import glob
import json
import os.path as osp
from typing import Any, Dict, List, Sequence

import numpy as np

from densekit.fileio import atomic_write_text

__all__ = ['evaluate_folds', 'format_folds']


def _config_and_checkpoint(work_dir: str) -> tuple:
    configs = sorted(glob.glob(osp.join(work_dir, '*.py')))
    if len(configs) != 1:
        raise ValueError(f'{work_dir}: expected the one config densekit train dumps there, '
                         f'found {len(configs)} .py files')
    pointer = osp.join(work_dir, 'last_checkpoint')
    ckpt = None
    if osp.isfile(pointer):
        with open(pointer) as f:
            ckpt = f.read().strip()
        if not osp.isfile(ckpt):
            ckpt = osp.join(work_dir, osp.basename(ckpt))
    if not ckpt or not osp.isfile(ckpt):
        found = sorted(glob.glob(osp.join(work_dir, 'iter_*.pth')),
                       key=lambda p: int(osp.basename(p)[5:-4]))
        if not found:
            raise ValueError(f'{work_dir}: no checkpoint (last_checkpoint or iter_*.pth)')
        ckpt = found[-1]
    return configs[0], ckpt


def evaluate_folds(work_dirs: Sequence[str], device: str = 'cpu', update_plans: bool = True,
                   hd95: bool = True) -> Dict[str, Any]:
    """Evaluate fold runs on their held-out cases (see the module docstring).

    Returns:
        ``{'folds': [{'fold', 'work_dir', 'checkpoint', 'cases', 'dice', 'hd95'}],
        'mean': {'dice', 'hd95'}, 'postprocessing': {...}}``; per-class values by class name.

    Raises:
        ValueError: a work dir without config or checkpoint, a run trained on all cases (it has
            no held-out cases), or two runs of the same fold.
    """
    import torch
    from mmengine.config import Config

    from densekit.inference import build_model
    from densekit.tasks.medical3d.dataset import MedicalVolumeDataset
    from densekit.tasks.medical3d.metrics import dice_score
    from densekit.tasks.medical3d.metrics import hd95 as hd95_fn
    from densekit.tasks.medical3d.postprocess import decide_postprocessing

    if not work_dirs:
        raise ValueError('evaluate-folds needs at least one work dir')
    folds: List[Dict[str, Any]] = []
    pairs = []
    plans_files = set()
    seen = set()
    classes: List[str] = []
    for work_dir in work_dirs:
        config, ckpt = _config_and_checkpoint(work_dir)
        cfg = Config.fromfile(config)
        ds_cfg = dict(cfg.val_dataloader.dataset)
        if cfg.train_dataloader.dataset.get('split') == 'all':
            raise ValueError(f'{work_dir}: trained on all cases (--fold all), so it has no '
                             f'held-out cases to evaluate')
        fold = int(ds_cfg.get('fold', 0))
        if fold in seen:
            raise ValueError(f'{work_dir}: fold {fold} is given twice')
        seen.add(fold)
        if cfg.get('plans_file'):
            plans_files.add(cfg.plans_file)
        keys = ('data_root', 'target_spacing', 'splits_file', 'intensity_stats')
        dataset = MedicalVolumeDataset(split='val', fold=fold, test_mode=True,
                                       **{k: ds_cfg[k] for k in keys if k in ds_cfg})
        classes = list(dataset.metainfo['classes'])
        model = build_model(cfg, ckpt, device)
        model.test_cfg['progress'] = False
        rows = []
        for index in range(len(dataset)):
            info = dataset.get_data_info(index)
            pred = model.predict_volume(torch.from_numpy(info['img']).to(device)).cpu().numpy()
            gt = np.asarray(info['gt_seg'])
            pairs.append((pred, gt))
            row = dict(case_id=info['case_id'], dice={}, hd95={})
            for c in range(1, len(classes)):
                row['dice'][classes[c]] = dice_score(pred == c, gt == c)
                if hd95:
                    row['hd95'][classes[c]] = hd95_fn(pred == c, gt == c, info['spacing'])
            rows.append(row)
        entry = dict(fold=fold, work_dir=work_dir, checkpoint=ckpt, cases=len(rows),
                     dice={n: float(np.mean([r['dice'][n] for r in rows])) for n in classes[1:]},
                     hd95={n: float(np.mean([r['hd95'][n] for r in rows])) for n in classes[1:]}
                     if hd95 else {})
        entry['mean_dice'] = float(np.mean(list(entry['dice'].values())))
        if hd95:
            entry['mean_hd95'] = float(np.mean(list(entry['hd95'].values())))
        folds.append(entry)
    mean = dict(dice=float(np.mean([f['mean_dice'] for f in folds])))
    if hd95:
        mean['hd95'] = float(np.mean([f['mean_hd95'] for f in folds]))
    decision = decide_postprocessing(pairs, len(classes))
    decision['decided_by'] = f'densekit evaluate-folds on folds {sorted(seen)}'
    result = dict(folds=sorted(folds, key=lambda f: f['fold']), mean=mean,
                  postprocessing=decision)
    if update_plans:
        for path in plans_files:
            if osp.isfile(path):
                with open(path) as f:
                    plans = json.load(f)
                plans['postprocessing'] = decision
                atomic_write_text(json.dumps(plans, indent=1), path)
        result['plans_updated'] = sorted(p for p in plans_files if osp.isfile(p))
    return result


def format_folds(result: Dict[str, Any]) -> str:
    """The table ``densekit evaluate-folds`` prints."""
    lines = []
    for f in result['folds']:
        per = ', '.join(f'{n} {v:.4f}' for n, v in f['dice'].items())
        hd = f', HD95 {f["mean_hd95"]:.2f} mm' if 'mean_hd95' in f else ''
        lines.append(f'fold {f["fold"]}: {f["cases"]} held-out cases, Dice {f["mean_dice"]:.4f} '
                     f'({per}){hd}')
    m = result['mean']
    hd = f', HD95 {m["hd95"]:.2f} mm' if 'hd95' in m else ''
    lines.append(f'mean over {len(result["folds"])} fold(s): Dice {m["dice"]:.4f}{hd}')
    post = result['postprocessing']
    keep = post['keep_largest_component']
    lines.append('post-processing: keep the largest component of class(es) '
                 f'{keep}' if keep else 'post-processing: none helps (no class changed)')
    for c, before in post['dice_before'].items():
        lines.append(f'  class {c}: Dice {before:.4f} -> {post["dice_after"][c]:.4f} with the '
                     f'largest component only')
    for path in result.get('plans_updated', []):
        lines.append(f'decision written to {path}')
    return '\n'.join(lines)
