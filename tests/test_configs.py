"""Every shipped config builds, and every CPU-sized one trains one step on built-in data."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import densekit  # noqa: F401
from tests.conftest import REPO

CONFIGS = sorted(p for p in (REPO / 'configs').rglob('*.py') if '_base_' not in p.parts)
CPU_TASK_CONFIGS = [p for p in CONFIGS if p.parent.name in ('segmentation', 'detection')
                    and ('shapes' in p.name)]


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO / 'configs'))


@pytest.mark.parametrize('path', CONFIGS, ids=_rel)
def test_config_builds_its_model(path: Path) -> None:
    cfg = Config.fromfile(str(path))
    init_default_scope(cfg.get('default_scope', 'densekit'))
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert cfg.get('task') in ('seg', 'det', 'sr', 'derain', 'medical')


@pytest.fixture(scope='module')
def builtin_data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from densekit.tasks.detection import generate_detection_dataset
    from densekit.tasks.segmentation import generate_shapes_dataset

    root = tmp_path_factory.mktemp('data')
    return dict(seg=generate_shapes_dataset(root / 'shapes', num_train=4, num_val=2),
                det=generate_detection_dataset(root / 'coco', num_train=4, num_val=2))


@pytest.mark.parametrize('path', CPU_TASK_CONFIGS, ids=_rel)
def test_cpu_config_trains_one_step(path: Path, builtin_data: dict) -> None:
    from mmengine.runner import Runner

    cfg = Config.fromfile(str(path))
    key = 'det' if cfg.task == 'det' else 'seg'
    root = str(builtin_data[key])
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
        cfg[loader].batch_size = 2
    if key == 'det':
        cfg.val_evaluator.ann_file = f'{root}/annotations/instances_val.json'
    cfg.work_dir = str(Path(root).parent / 'work' / path.stem)
    runner = Runner.from_cfg(cfg)
    model = runner.model
    model.train()
    data = next(iter(runner.build_dataloader(cfg.train_dataloader)))
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    optim = torch.optim.SGD((p for p in model.parameters() if p.requires_grad), lr=1e-3)
    losses = model.train_step(data, runner.build_optim_wrapper(
        dict(type='OptimWrapper', optimizer=optim)))
    assert all(torch.isfinite(v).all() for k, v in losses.items() if 'loss' in k)
    after = [p for p in model.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(after, before))
