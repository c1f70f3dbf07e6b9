"""Training, evaluation and demo plumbing of the restoration task; quality gates (slow)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from densekit import apis
from densekit.apis import load_config, parse_cfg_options, train
from densekit.demo import STAGES
from densekit.tasks.restoration.hooks import TimeCosineLRHook
from densekit.tasks.restoration.photos import generate_restoration_photos
from tests.restoration_threads import idle_threads  # noqa: F401

REPO = Path(__file__).resolve().parents[3]
SR_CONFIG = REPO / 'configs' / 'restoration' / 'edsr_x2c32b8_1xb4-4min_photos.py'
DERAIN_CONFIG = REPO / 'configs' / 'restoration' / 'resunet_c16_1xb4-4min_photos-rain.py'


@pytest.fixture(scope='module')
def tiny_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_restoration_photos(tmp_path_factory.mktemp('photos'), train=('page',),
                                       val=('microaneurysms',))


def _tiny(root: Path, iters: int = 3) -> list[str]:
    opts = [f'{loader}.dataset.data_root={root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    return [*opts, 'model.backbone.channels=8', 'model.backbone.num_blocks=1',
            'model.head.in_channels=8', 'train_dataloader.batch_size=2',
            f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}', 'default_hooks.logger.interval=1']


def test_time_cosine_lr_factor() -> None:
    hook = TimeCosineLRHook(budget_s=100, warmup_iters=10, warmup_ratio=0.1, min_ratio=0.01)
    assert hook.factor(0, 0.0) == pytest.approx(0.1)
    assert hook.factor(5, 0.0) == pytest.approx(0.55)
    assert hook.factor(50, 50.0) == pytest.approx(0.01 + 0.99 * 0.5)
    assert hook.factor(50, 100.0) == pytest.approx(0.01) == hook.factor(99, 500.0)
    assert hook.factor(5, 99.0) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(0.99 *
                                                                                      math.pi)))
    with pytest.raises(ValueError, match='budget_s'):
        TimeCosineLRHook(budget_s=0)


def test_train_then_test_with_pictures(tmp_path: Path, tiny_photos: Path) -> None:
    cfg = load_config(str(SR_CONFIG), parse_cfg_options(_tiny(tiny_photos)), str(tmp_path))
    runner = train(cfg)
    assert runner.iter == 3 and (tmp_path / 'iter_3.pth').is_file()
    metrics = apis.test(cfg, str(tmp_path / 'iter_3.pth'), show_dir=str(tmp_path / 'show'),
                   out=str(tmp_path / 'metrics.json'))
    assert set(metrics) == {'psnr_y', 'ssim_y', 'psnr'}
    assert json.loads((tmp_path / 'metrics.json').read_text())['psnr_y'] == pytest.approx(
        metrics['psnr_y'])
    assert (tmp_path / 'show' / 'microaneurysms.png').is_file()


def test_demo_stages_are_registered_and_evaluate(tmp_path: Path, tiny_photos: Path) -> None:
    from densekit.registry import MODELS
    from densekit.tasks.restoration.demo import evaluate_photos

    assert {'sr', 'derain'} <= set(STAGES)
    model = MODELS.build(dict(type='densekit.Restorer', scale=2,
                              backbone=dict(type='densekit.EDSRBody', channels=8, num_blocks=1),
                              head=dict(type='densekit.PixelShuffleHead', in_channels=8, scale=2,
                                        input_skip='bicubic')))
    data = [dict(lq_path=str(tiny_photos / 'val/LRx2/microaneurysms.png'),
                 gt_path=str(tiny_photos / 'val/GT/microaneurysms.png'))]
    scores = evaluate_photos(model, data, 2, tmp_path)
    # untrained with a zero output conv, the model *is* MATLAB bicubic: equal scores
    assert scores['out'] == pytest.approx(scores['base'], abs=1e-6)
    assert (tmp_path / 'microaneurysms.png').is_file()


def _gate(config: Path, work: Path) -> tuple[dict, int]:
    from densekit.tasks.restoration.demo import evaluate_photos

    root = generate_restoration_photos(REPO / 'data' / 'restoration' / 'photos')
    opts = [f'{loader}.dataset.data_root={root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    cfg = load_config(str(config), parse_cfg_options(opts), str(work))
    budget = [h['budget_s'] for h in cfg.custom_hooks if h['type'] == 'densekit.TimeBudgetHook']
    assert budget and budget[0] <= 300  # the gate: at most 5 minutes of training
    torch.manual_seed(0)
    runner = train(cfg)
    dataset = runner.val_dataloader.dataset
    return evaluate_photos(runner.model, dataset.data_list, dataset.scale, work / 'pictures'), \
        runner.iter


@pytest.mark.slow
def test_sr_beats_bicubic_by_one_db_on_held_out_photos(tmp_path: Path) -> None:
    scores, iters = _gate(SR_CONFIG, tmp_path)
    print(f'SR x2: PSNR-Y {scores["out"]:.2f} vs bicubic {scores["base"]:.2f} after {iters} iters')
    assert scores['out'] - scores['base'] >= 1.0


@pytest.mark.slow
def test_derain_gains_four_db_over_the_rainy_input(tmp_path: Path) -> None:
    scores, iters = _gate(DERAIN_CONFIG, tmp_path)
    print(f'derain: PSNR {scores["out"]:.2f} vs input {scores["base"]:.2f} after {iters} iters')
    assert scores['out'] - scores['base'] >= 4.0


@pytest.mark.slow
def test_demo_records_sr_and_derain_metrics(tmp_path: Path) -> None:
    from densekit.demo import run_demo

    for task in ('sr', 'derain'):
        run_demo(task, work_dir=str(tmp_path), data_root=str(REPO / 'data'))
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert {'psnr_y', 'psnr_y_bicubic'} <= set(summary['sr'])
    assert {'psnr', 'psnr_input'} <= set(summary['derain'])
    assert summary['sr']['psnr_y'] > summary['sr']['psnr_y_bicubic']
    assert summary['derain']['psnr'] > summary['derain']['psnr_input']
    assert np.isfinite(summary['sr']['seconds'])
    assert len(list((tmp_path / 'sr' / 'pictures').glob('*.png'))) == 3
