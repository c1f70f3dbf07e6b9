"""Demo stages of the restoration task (``densekit demo --task sr`` / ``--task derain``).

Each stage generates the built-in photo data, trains a CPU-sized model inside its announced
time budget, restores the held-out photos (never seen in training), prints PSNR against the
baseline (bicubic upscaling / the rainy input) and writes side-by-side pictures
``<work_dir>/pictures/<photo>.png``: input, baseline, output, ground truth.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
from mmengine.config import Config

from densekit.fileio import atomic_write_bytes
from densekit.imageio import encode_image
from densekit.threads import idle_threads

__all__ = ['stage_sr', 'stage_derain', 'evaluate_photos']

SR_CONFIG = 'edsr_x2c32b8_1xb4-4min_photos.py'
DERAIN_CONFIG = 'resunet_c16_1xb4-4min_photos-rain.py'


def _budget() -> Tuple[int, str]:
    from densekit.demo import _device_note, stage_budget

    return stage_budget(180, 90), _device_note()


def _prepare(config: str, work_dir: Path, data_root: Path, budget_s: int) -> Config:
    from densekit.demo import prepare_stage_config
    from densekit.tasks.restoration.photos import generate_restoration_photos

    root = generate_restoration_photos(data_root / 'restoration' / 'photos')
    # the config's own time-budget hooks get the stage's budget; the stage evaluates the
    # held-out photos itself, so the schedule hook does not validate at the end
    return prepare_stage_config(f'restoration/{config}', work_dir, root, budget_s,
                                validate_at_end=False)


def _write_png(image: np.ndarray, path: Path) -> None:
    atomic_write_bytes(encode_image(image, '.png', rgb=True, what=str(path)), path)


def evaluate_photos(model: torch.nn.Module, data_list: List[dict], scale: int,
                    pictures: Path) -> Dict[str, float]:
    """Restore each ``(lq_path, gt_path)`` photo; PSNR/SSIM of the output and of the baseline.

    The baseline is MATLAB bicubic upscaling for SR and the degraded input for deraining. SR
    scores are on BT.601 Y with ``crop_border = scale``; deraining on RGB.
    """
    from densekit.tasks.restoration.imresize import imresize
    from densekit.tasks.restoration.inference import restore_array
    from densekit.tasks.restoration.metrics import psnr, ssim
    from densekit.tasks.restoration.transforms import read_rgb
    from densekit.tasks.restoration.visualization import side_by_side

    model.eval()
    convert, crop = ('y', scale) if scale > 1 else (None, 0)
    rows: Dict[str, List[float]] = {'out': [], 'base': [], 'ssim': [], 'ssim_base': []}
    for info in data_list:
        lq, gt = read_rgb(info['lq_path']), read_rgb(info['gt_path'])
        gt = gt[:lq.shape[0] * scale, :lq.shape[1] * scale]
        out = restore_array(model, lq)
        base = imresize(lq, scale) if scale > 1 else lq
        scores = (psnr(out, gt, crop, convert), psnr(base, gt, crop, convert),
                  ssim(out, gt, crop, convert), ssim(base, gt, crop, convert))
        for key, value in zip(rows, scores):
            rows[key].append(value)
        name = Path(info['gt_path']).stem
        print(f'  {name:<12} PSNR{"-Y" if convert else ""} {scores[0]:6.2f} dB  '
              f'(baseline {scores[1]:6.2f} dB, gain {scores[0] - scores[1]:+.2f} dB)', flush=True)
        nearest = np.repeat(np.repeat(lq, scale, axis=0), scale, axis=1)
        labels = (['input (nearest)', 'bicubic', 'output', 'ground truth'] if scale > 1 else
                  ['rainy input', 'output', 'ground truth'])
        panels = [nearest, base, out, gt] if scale > 1 else [lq, out, gt]
        _write_png(side_by_side(panels, labels), pictures / f'{name}.png')
    return {key: float(np.mean(values)) for key, values in rows.items()}


def _train(config: str, work_dir: Path, data_root: Path, task: str, what: str
           ) -> Tuple[torch.nn.Module, dict, int]:
    from densekit import apis
    from densekit.demo import _banner, _budget_text

    budget_s, device = _budget()
    _banner(f'{task}: {what} on built-in photos; time budget {_budget_text(budget_s)} training + '
            f'~1 min evaluation ({device})')
    cfg = _prepare(config, work_dir, data_root, budget_s)
    runner = apis.train(cfg)
    data_list = runner.val_dataloader.dataset.data_list
    return runner.model, data_list, runner.iter


def stage_sr(work_dir: Path, data_root: Path) -> Dict[str, float]:
    """Super-resolution x2: CPU-sized EDSR; PSNR-Y against bicubic on held-out photos."""
    model, data_list, iters = _train(SR_CONFIG, work_dir, data_root, 'sr',
                                     'EDSR x2 (8 blocks, 32 channels)')
    print(f'sr: {iters} iterations; restoring {len(data_list)} held-out photos', flush=True)
    with idle_threads():
        scores = evaluate_photos(model, data_list, 2, work_dir / 'pictures')
    print(f'sr: PSNR-Y {scores["out"]:.2f} dB vs bicubic {scores["base"]:.2f} dB '
          f'({scores["out"] - scores["base"]:+.2f} dB); pictures in {work_dir / "pictures"}')
    return {'psnr_y': scores['out'], 'psnr_y_bicubic': scores['base'],
            'ssim_y': scores['ssim'], 'ssim_y_bicubic': scores['ssim_base'],
            'train_iters': float(iters)}


def stage_derain(work_dir: Path, data_root: Path) -> Dict[str, float]:
    """Deraining: residual U-Net on synthetic rain; PSNR against the rainy input."""
    model, data_list, iters = _train(DERAIN_CONFIG, work_dir, data_root, 'derain',
                                     'residual U-Net deraining')
    print(f'derain: {iters} iterations; deraining {len(data_list)} held-out photos', flush=True)
    with idle_threads():
        scores = evaluate_photos(model, data_list, 1, work_dir / 'pictures')
    print(f'derain: PSNR {scores["out"]:.2f} dB vs rainy input {scores["base"]:.2f} dB '
          f'({scores["out"] - scores["base"]:+.2f} dB); pictures in {work_dir / "pictures"}')
    return {'psnr': scores['out'], 'psnr_input': scores['base'], 'ssim': scores['ssim'],
            'ssim_input': scores['ssim_base'], 'train_iters': float(iters)}
