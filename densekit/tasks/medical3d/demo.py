"""The ``medical`` stage of ``densekit demo``: a residual U-Net on built-in MR phantoms.

Generates the phantoms, trains the CPU-tiny U-Net inside a time budget, evaluates Dice and HD95
on the held-out validation phantoms, segments a held-out test phantom through ``densekit
infer`` (NIfTI output with the input's affine and header) and draws its axial, coronal and
sagittal slices with the prediction overlaid.
"""
from __future__ import annotations

import os
import os.path as osp
from pathlib import Path
from typing import Dict

import numpy as np
import torch

from densekit.fileio import atomic_write_bytes
from densekit.imageio import encode_image
from densekit.lazy import lazy_module
from densekit.threads import torch_threads

nib = lazy_module('nibabel')

CONFIG = 'medical3d/resunet-tiny_1xb2-600i_phantoms-48x48x48.py'
CPU_BUDGET_S = 420
GPU_BUDGET_S = 120
GPU_MAX_ITERS = 1500  # a GPU fits more than the config's CPU schedule in its budget


def stage_medical(work_dir: Path, data_root: Path) -> Dict[str, float]:
    """Medical 3D: residual U-Net on phantoms; mean foreground Dice plus a segmented NIfTI."""
    from densekit.demo import _banner, _budget_text, _device_note, stage_budget

    gpu = torch.cuda.is_available()
    budget_s = stage_budget(CPU_BUDGET_S, GPU_BUDGET_S)
    _banner(f'medical: residual 3D U-Net on built-in MR phantoms; time budget '
            f'{_budget_text(budget_s)} training + ~1 min evaluation and inference '
            f'({_device_note()})')
    busy = not gpu and _busy()
    if busy:
        # OpenMP threads of competing jobs stall each other: one thread trains 4-6x faster
        print('medical: the CPU is busy with other jobs; training single-threaded', flush=True)
    with torch_threads(1 if busy else None):
        return _run(work_dir, data_root, budget_s, gpu)


def _busy() -> bool:
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1)
    except OSError:
        return False


def _run(work_dir: Path, data_root: Path, budget_s: int, gpu: bool) -> Dict[str, float]:
    from densekit import apis
    from densekit.demo import prepare_stage_config
    from densekit.inference import infer
    from densekit.tasks.medical3d.metrics import dice_score
    from densekit.tasks.medical3d.phantoms import generate_phantoms
    from densekit.tasks.medical3d.viz import render_slices

    root = generate_phantoms(data_root / 'phantoms', num_train=24, num_val=6, num_test=2)
    cfg = prepare_stage_config(CONFIG, work_dir, root, budget_s,
                               max_iters=GPU_MAX_ITERS if gpu else None)
    runner = apis.train(cfg)
    checkpoint = osp.join(work_dir, f'iter_{runner.iter}.pth')
    metrics = apis.test(cfg, checkpoint)

    test_image = root / 'imagesTs' / 'phantom_030_0000.nii.gz'
    summary = infer(cfg, checkpoint, [str(test_image)], str(work_dir / 'predictions'))
    pred_path = summary.written[0]
    pred = np.asarray(nib.load(pred_path).dataobj)
    truth = np.asarray(nib.load(str(root / 'labelsTs' / 'phantom_030.nii.gz')).dataobj)
    image = nib.load(str(test_image))
    picture = render_slices(np.asarray(image.get_fdata(dtype=np.float32)), pred, image.affine)
    png_path = work_dir / 'phantom_030_overlay.png'
    atomic_write_bytes(encode_image(picture, '.png', what='the overlay picture'), png_path)
    test_dice = float(np.mean([dice_score(pred == c, truth == c) for c in (1, 2)]))
    print(f'medical: mean foreground Dice {metrics["dice"]:.3f} (organ '
          f'{metrics["dice_organ"]:.3f}, lesion {metrics["dice_lesion"]:.3f}), HD95 '
          f'{metrics["hd95"]:.2f} mm on {len(runner.test_dataloader.dataset)} held-out phantoms '
          f'after {runner.iter} iterations; test phantom Dice {test_dice:.3f}, segmentation '
          f'{pred_path}, picture {png_path}')
    return {'dice': float(metrics['dice']), 'dice_organ': float(metrics['dice_organ']),
            'dice_lesion': float(metrics['dice_lesion']), 'hd95': float(metrics['hd95']),
            'test_case_dice': test_dice, 'train_iters': float(runner.iter)}
