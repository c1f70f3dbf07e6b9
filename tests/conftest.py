"""Shared fixtures: a tiny built-in shapes dataset and overrides for a seconds-long training."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEG_CONFIG = REPO / 'configs' / 'segmentation' / 'fpn_r18-tiny_1xb8-2000i_shapes-128x128.py'
DET_CONFIG = REPO / 'configs' / 'detection' / 'retinanet_r18-half_fpn_1xb8-2000i_shapes-160x160.py'


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from densekit.tasks.segmentation import generate_shapes_dataset

    return generate_shapes_dataset(tmp_path_factory.mktemp('shapes'), num_train=8, num_val=4,
                                   size=64, seed=3)


def tiny_seg_options(data_root: Path, max_iters: int = 6, interval: int = 3) -> list[str]:
    """--cfg-options that shrink the shapes config to a few-second CPU run."""
    opts = [f'train_dataloader.dataset.data_root={data_root}',
            f'val_dataloader.dataset.data_root={data_root}',
            f'test_dataloader.dataset.data_root={data_root}',
            'train_dataloader.batch_size=2', 'val_dataloader.batch_size=2',
            'model.data_preprocessor.size=(64,64)',
            f'train_cfg.max_iters={max_iters}', f'train_cfg.val_interval={max_iters}',
            f'default_hooks.checkpoint.interval={interval}',
            'default_hooks.checkpoint.max_keep_ckpts=-1',
            'default_hooks.logger.interval=1']
    return opts


def run_tool(args: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, **kwargs)
