"""``densekit plan``: fingerprint a dataset, plan it, write ``plans.json``, ``config.py`` and
``splits.json``; and the ``--fold`` overrides of ``densekit train``.

* ``plans.json``: the fingerprint (:mod:`~.fingerprint`), the plan (:mod:`~.planner`), the
  post-processing decision (``postprocessing.keep_largest_component``: class values, empty
  until cross-validation shows it helps) and how the plan was made.
* ``config.py``: an ordinary densekit config (self-contained, no ``_base_``) that
  ``densekit train`` runs: the planned network, patch, batch, spacing and normalisation, the
  data root pointing at the dataset, fold 0 of ``splits.json``.
* ``splits.json``: nnU-Net's ``splits_final.json`` format, 5 folds (fewer for fewer than 5
  cases) of the sorted case ids, ``KFold(shuffle=True, random_state=12345)`` as nnU-Net makes
  them.

All three are plain text to read, edit and commit. ``densekit train PLAN_DIR/config.py
--fold K`` trains fold ``K`` into ``<work_dir>/fold_K``; ``--fold all`` trains on every case
(validating on fold 0's held-out cases, which it has then seen).
"""
from __future__ import annotations

import json
import os
import os.path as osp
import pprint
from typing import Any, Dict, List, Optional, Tuple, Union

from densekit.fileio import atomic_write_text

__all__ = ['SPLIT_SEED', 'make_splits', 'render_config', 'write_plan', 'fold_overrides']

SPLIT_SEED = 12345
NUM_FOLDS = 5


def make_splits(case_ids: List[str], num_folds: int = NUM_FOLDS, seed: int = SPLIT_SEED
                ) -> List[Dict[str, List[str]]]:
    """Seeded k-fold split of the sorted case ids, nnU-Net's format and procedure."""
    from sklearn.model_selection import KFold

    keys = sorted(case_ids)
    if len(keys) < 2:
        raise ValueError(f'cross-validation needs at least 2 cases, got {len(keys)}')
    folds = min(num_folds, len(keys))
    out = []
    for train, val in KFold(n_splits=folds, shuffle=True, random_state=seed).split(keys):
        out.append(dict(train=[keys[i] for i in train], val=[keys[i] for i in val]))
    return out


def _fmt(value: Any) -> str:
    return pprint.pformat(value, width=92, compact=True, sort_dicts=False)


def render_config(plan: Dict[str, Any], data_root: str, plan_dir: str) -> str:
    """The text of ``config.py`` for ``plan``."""
    from densekit.tasks.medical3d.planner import model_config

    p = plan['plan']
    fp = plan['fingerprint']
    net = p['network']
    model = model_config(net, len(fp['channel_names']), len(fp['classes']))
    patch = tuple(p['patch_size'])
    stats = [n['stats'] for n in p['normalization']]
    cpu = p['memory']['device'] == 'cpu'
    max_iters = 600 if cpu else 250000
    augment = [
        "    dict(type='RandomPatch3D', patch_size=patch_size, fg_fraction=1 / 3),",
        "    dict(type='RandomAffine3D', prob=0.2, degrees=15.0, scale=(0.85, 1.25)),",
        "    dict(type='RandomFlip3D', prob=0.5, axes=(0, 1, 2)),",
    ]
    if patch[1] == patch[2]:
        augment.append("    dict(type='RandomRotate90', prob=0.5, axes=(1, 2)),")
    augment += ["    dict(type='RandomIntensity3D', prob=0.15),",
                "    dict(type='RandomGamma3D', prob=0.3),",
                "    dict(type='PackMedicalInputs'),"]
    name = plan['dataset']
    return f'''# Planned by `densekit plan` from {data_root} ({len(fp['case_ids'])} cases).
# Every value below comes from {osp.join(plan_dir, 'plans.json')}; edit freely.
# STU-Net preset {net['arch']!r}, {net['num_stages']} stages, budget {p['memory']['budget_gb']} GB
# ({p['memory']['device']}), estimated {p['memory']['estimated_gb']} GB at batch {p['batch_size']}.
task = 'medical'
default_scope = 'densekit'
work_dir = {_fmt(osp.join('work_dirs', 'plan-' + name))}
data_root = {_fmt(osp.abspath(data_root))}
plans_file = {_fmt(osp.abspath(osp.join(plan_dir, 'plans.json')))}
splits_file = {_fmt(osp.abspath(osp.join(plan_dir, 'splits.json')))}
fold = 0  # `densekit train ... --fold K` overrides it (K or all)
target_spacing = {_fmt(tuple(p['target_spacing']))}  # (z, y, x) mm
patch_size = {_fmt(patch)}
batch_size = {p['batch_size']}
# CT channels: global clip + z-score with the dataset's foreground statistics; others per case
intensity_stats = {_fmt(stats)}
# used by `densekit infer` (channel names come from the checkpoint's dataset meta)
preprocessing = dict(target_spacing=target_spacing, intensity_stats=intensity_stats)

model = {_fmt(model)}
model['test_cfg'] = dict(roi_size=patch_size, sw_batch_size=1, overlap=0.5, mode='gaussian')

train_pipeline = [
{chr(10).join(augment)}
]
test_pipeline = [dict(type='PackMedicalInputs')]
dataset = dict(type='MedicalVolumeDataset', data_root=data_root, target_spacing=target_spacing,
               splits_file=splits_file, fold=fold, intensity_stats=intensity_stats)
train_dataloader = dict(
    batch_size=batch_size, num_workers={1 if cpu else 4}, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(**dataset, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(**dataset, split='val', test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='MedicalSegMetric', hd95=True)
test_evaluator = val_evaluator

optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=3e-3, betas=(0.9, 0.999), weight_decay=1e-4),
                     clip_grad=dict(max_norm=12.0))
max_iters = {max_iters}
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=min(30, max_iters)),
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=min(30, max_iters), end=max_iters,
         by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=25, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=2,
                    save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
custom_hooks = [dict(type='densekit.ProgressBarHook')]
'''


def write_plan(data_root: str, out_dir: str, gpu_memory_gb: Optional[float] = None,
               cpu: bool = False, workers: Optional[int] = None, progress: bool = True
               ) -> Dict[str, Any]:
    """Fingerprint ``data_root``, plan it and write the three files into ``out_dir``.

    Args:
        data_root: Dataset folder (MSD / nnU-Net layout).
        out_dir: Plan folder (created; the dataset folder itself is refused).
        gpu_memory_gb: GPU memory budget (default 8 GB, nnU-Net's reference).
        cpu: Plan for CPU training (``tiny`` preset, see :func:`~.planner.plan_dataset`).
        workers: Reader processes of the fingerprint.
        progress: Progress bar while fingerprinting.

    Returns:
        The ``plans.json`` content.

    Raises:
        ValueError: both ``cpu`` and ``gpu_memory_gb``, a bad budget, ``out_dir`` inside
            the dataset folder's ``imagesTr`` / ``labelsTr``, or bad cases
            (:class:`~.fingerprint.DatasetProblems` naming every one).
    """
    import time

    from densekit.tasks.medical3d.fingerprint import fingerprint_dataset
    from densekit.tasks.medical3d.planner import plan_dataset

    if cpu and gpu_memory_gb is not None:
        raise ValueError('give either --gpu-memory or --cpu, not both')
    if gpu_memory_gb is not None and not (isinstance(gpu_memory_gb, (int, float))
                                          and gpu_memory_gb > 0):
        raise ValueError(f'gpu_memory_gb must be a positive number, got {gpu_memory_gb!r}')
    root, out = osp.realpath(data_root), osp.realpath(out_dir)
    for sub in ('imagesTr', 'labelsTr', 'imagesTs', 'labelsTs'):
        if out == osp.join(root, sub) or out.startswith(osp.join(root, sub) + os.sep):
            raise ValueError(f'--out {out_dir!r} is inside the dataset\'s {sub}; choose a '
                             f'folder outside the input files')
    started = time.perf_counter()
    fingerprint = fingerprint_dataset(data_root, workers=workers, progress=progress)
    fp_seconds = time.perf_counter() - started
    plan = plan_dataset(fingerprint, gpu_memory_gb=8.0 if gpu_memory_gb is None
                        else gpu_memory_gb, cpu=cpu)
    with open(osp.join(data_root, 'dataset.json')) as f:
        name = str(json.load(f).get('name') or osp.basename(root))
    splits = make_splits(fingerprint['case_ids'])
    content = dict(
        dataset=name.replace(' ', '_'), data_root=root, planner='densekit plan (nnU-Net rules)',
        fingerprint=fingerprint, plan=plan,
        postprocessing=dict(keep_largest_component=[], decided_by=None),
        splits=dict(file='splits.json', folds=len(splits), seed=SPLIT_SEED),
        timing=dict(fingerprint_s=round(fp_seconds, 3),
                    plan_s=round(time.perf_counter() - started - fp_seconds, 3)))
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_text(json.dumps(splits, indent=1), osp.join(out_dir, 'splits.json'))
    atomic_write_text(json.dumps(content, indent=1), osp.join(out_dir, 'plans.json'))
    atomic_write_text(render_config(content, data_root, out_dir),
                      osp.join(out_dir, 'config.py'))
    return content


def summary_lines(content: Dict[str, Any]) -> List[str]:
    """What ``densekit plan`` prints."""
    from densekit.tasks.medical3d.fingerprint import _summary

    p = content['plan']
    net, mem = p['network'], p['memory']
    norm = ', '.join(f'{n["channel"]}: {n["scheme"]}' for n in p['normalization'])
    rule = 'anisotropic' if p['anisotropic'] else 'isotropic'
    return [*_summary(content['fingerprint']),
            f'target spacing {p["target_spacing"]} mm ({rule} rule), normalisation {norm}',
            f'network STU-Net {net["arch"]}: {net["num_stages"]} stages, strides '
            f'{net["strides"]}, kernels {net["kernel_sizes"]}',
            f'patch {p["patch_size"]}, batch {p["batch_size"]}: estimated {mem["estimated_gb"]} '
            f'GB of {mem["budget_gb"]} GB ({mem["device"]}; measured '
            f'{mem["activation_bytes_per_voxel"]:.0f} B/voxel, {mem["params"]:,} parameters)',
            f'fingerprint {content["timing"]["fingerprint_s"]:.1f} s, plan '
            f'{content["timing"]["plan_s"]:.1f} s']


def fold_overrides(config: Any, fold: Union[int, str], work_dir: Optional[str] = None
                   ) -> Tuple[Dict[str, Any], str]:
    """``--cfg-options`` and work dir that make ``config`` train fold ``fold`` (or ``'all'``).

    Args:
        config: Loaded config (its dataloaders must use ``MedicalVolumeDataset``).
        fold: Fold index of the splits file, or ``'all'``.
        work_dir: Explicit work dir (default: the config's, plus ``/fold_K``).

    Raises:
        ValueError: a fold that is neither an index of the splits file nor ``'all'``, or a
            config without a fold-aware dataset.
    """
    train_ds = config.get('train_dataloader', {}).get('dataset', {})
    if 'MedicalVolumeDataset' not in str(train_ds.get('type', '')):
        raise ValueError(f'--fold needs a config whose train dataset is MedicalVolumeDataset '
                         f'(e.g. PLAN_DIR/config.py of densekit plan), got '
                         f'{train_ds.get("type")!r}')
    splits_path = train_ds.get('splits_file') or osp.join(train_ds.get('data_root', ''),
                                                          'splits_final.json')
    if str(fold) == 'all':
        options: Dict[str, Any] = {'train_dataloader.dataset.split': 'all'}
        tag = 'fold_all'
    else:
        try:
            index = int(fold)
        except (TypeError, ValueError):
            raise ValueError(f"--fold must be a fold index or 'all', got {fold!r}") from None
        if not osp.isfile(splits_path):
            raise ValueError(f'--fold {fold}: splits file {splits_path} not found')
        with open(splits_path) as f:
            count = len(json.load(f))
        if not 0 <= index < count:
            raise ValueError(f'--fold {fold}: {splits_path} has folds 0..{count - 1}')
        options = {f'{loader}.dataset.fold': index
                   for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
                   if config.get(loader)}
        tag = f'fold_{index}'
    base = work_dir or config.get('work_dir')
    return options, (work_dir if work_dir else osp.join(base, tag))
