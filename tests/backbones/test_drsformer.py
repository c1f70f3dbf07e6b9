"""DRSformer's CPU configuration learns: >= +4 dB PSNR over the rainy input of the held-out
photos after at most 10 minutes of CPU training (slow)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from densekit.apis import load_config, parse_cfg_options, train
from densekit.tasks.restoration.demo import evaluate_photos
from densekit.tasks.restoration.photos import generate_restoration_photos

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'restoration' / 'drsformer-tiny_c16_1xb4-10min_photos-rain.py'


def test_cpu_config_keeps_the_measured_choices() -> None:
    from mmengine.config import Config

    cfg = Config.fromfile(str(CONFIG))
    assert cfg.model.backbone.mefc is False   # with the MEFC it stayed the identity
    crop = [t for t in cfg.train_dataloader.dataset.pipeline
            if t['type'] == 'densekit.PairedRandomCrop']
    assert crop[0]['gt_patch_size'] == 32
    budget = [h['budget_s'] for h in cfg.custom_hooks if h['type'] == 'densekit.TimeBudgetHook']
    assert budget == [600]


@pytest.mark.slow
def test_drsformer_gains_four_db_over_the_rainy_input(tmp_path: Path) -> None:
    root = generate_restoration_photos(REPO / 'data' / 'restoration' / 'photos')
    opts = [f'{loader}.dataset.data_root={root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    cfg = load_config(str(CONFIG), parse_cfg_options(opts), str(tmp_path))
    torch.manual_seed(0)
    runner = train(cfg)
    dataset = runner.val_dataloader.dataset
    scores = evaluate_photos(runner.model, dataset.data_list, 1, tmp_path / 'pictures')
    print(f'DRSformer derain: PSNR {scores["out"]:.2f} vs input {scores["base"]:.2f} after '
          f'{runner.iter} iters')
    assert scores['out'] - scores['base'] >= 4.0
