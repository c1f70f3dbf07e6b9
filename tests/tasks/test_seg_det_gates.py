"""Quality gates of the CPU-sized segmentation and detection configs (slow; `make test-all`).

Each trains the real config with tools/train.py under its time budget on the built-in data (as
`densekit demo` generates it), then evaluates the saved checkpoint with tools/test.py:

* Semantic FPN (half-width ResNet-18): mIoU >= 80 on the shapes validation split after at most
  6 minutes of training;
* RetinaNet (half-width ResNet-18 + densekit.FPN): bbox mAP@0.5 >= 0.80 on the detection
  validation split after at most 10 minutes.

The budgets are wall-clock on a 2-core CPU and assume the machine is otherwise idle.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import DET_CONFIG, REPO, SEG_CONFIG, run_tool


def _train_then_test(config: Path, work: Path, budget_s: int, options: list[str]) -> dict:
    train = run_tool(['tools/train.py', str(config), '--work-dir', str(work), '--time-budget',
                      str(budget_s), '--cfg-options', *options], timeout=budget_s + 600)
    assert train.returncode == 0, train.stderr[-3000:]
    checkpoint = (work / 'last_checkpoint').read_text().strip()
    out = work / 'metrics.json'
    test = run_tool(['tools/test.py', str(config), checkpoint, '--out', str(out),
                     '--cfg-options', *options], timeout=900)
    assert test.returncode == 0, test.stderr[-3000:]
    return json.loads(out.read_text())


def _data_options(root: Path) -> list[str]:
    return [f'{loader}.dataset.data_root={root}/' for loader in
            ('train_dataloader', 'val_dataloader', 'test_dataloader')]


@pytest.mark.slow
def test_semantic_fpn_reaches_miou_80_within_6_minutes(tmp_path: Path) -> None:
    from densekit.tasks.segmentation import generate_shapes_dataset

    root = generate_shapes_dataset(REPO / 'data' / 'shapes', num_train=1000, num_val=40)
    metrics = _train_then_test(SEG_CONFIG, tmp_path / 'seg', 360, _data_options(root))
    print(f'\nSemantic FPN on shapes: {metrics}')
    assert metrics['mIoU'] >= 80


@pytest.mark.slow
def test_retinanet_reaches_map50_080_within_10_minutes(tmp_path: Path) -> None:
    from densekit.tasks.detection import generate_detection_dataset

    root = generate_detection_dataset(REPO / 'data' / 'shapes_coco', num_train=300, num_val=50)
    ann = root / 'annotations' / 'instances_val.json'
    options = [*_data_options(root), f'val_evaluator.ann_file={ann}',
               f'test_evaluator.ann_file={ann}']
    metrics = _train_then_test(DET_CONFIG, tmp_path / 'det', 600, options)
    print(f'\nRetinaNet on shapes: {metrics}')
    assert metrics['coco/bbox_mAP_50'] >= 0.80
