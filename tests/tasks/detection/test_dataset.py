"""Built-in detection data: COCO json read by mmdet, scored by CocoMetric, bad boxes refused."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from densekit.tasks.detection import DET_CLASSES, ShapesCocoDataset, generate_detection_dataset


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_detection_dataset(tmp_path_factory.mktemp('coco'), num_train=6, num_val=4,
                                      size=96, seed=5)


def _dataset(root: Path, split: str = 'val', ann: str | None = None) -> ShapesCocoDataset:
    return ShapesCocoDataset(
        data_root=str(root), ann_file=ann or f'annotations/instances_{split}.json',
        data_prefix=dict(img=f'images/{split}/'), test_mode=True,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='mmdet.LoadAnnotations', with_bbox=True)])


def test_boxes_are_tight_around_visible_pixels(coco_root: Path) -> None:
    coco = json.loads((coco_root / 'annotations/instances_train.json').read_text())
    assert {c['name'] for c in coco['categories']} == set(DET_CLASSES)
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 96 and y + h <= 96
        assert 0 < ann['area'] <= w * h and ann['iscrowd'] in (0, 1)
    assert sum(1 - a['iscrowd'] for a in coco['annotations']) >= len(coco['images'])


def test_mmdet_reads_it_and_cocometric_scores_ground_truth_as_perfect(coco_root: Path) -> None:
    from mmdet.evaluation import CocoMetric

    ds = _dataset(coco_root)
    metric = CocoMetric(ann_file=str(coco_root / 'annotations/instances_val.json'),
                        metric='bbox')
    metric.dataset_meta = ds.metainfo
    for index in range(len(ds)):
        sample = ds[index]
        keep = ~sample['gt_ignore_flags']
        boxes = torch.as_tensor(np.asarray(sample['gt_bboxes'].tensor)[keep])
        pred = dict(bboxes=boxes, scores=torch.ones(len(boxes)),
                    labels=torch.as_tensor(sample['gt_bboxes_labels'][keep]))
        metric.process({}, [dict(img_id=sample['img_id'], pred_instances=pred,
                                 ori_shape=(96, 96))])
    result = metric.evaluate(len(ds))
    assert result['coco/bbox_mAP_50'] == pytest.approx(1.0)


@pytest.mark.parametrize('edit,match', [
    (dict(bbox=[90, 10, 20, 10]), 'outside'),
    (dict(bbox=[10, 10, -4, 10]), 'non-positive'),
    (dict(category_id=42), 'category_id 42'),
])
def test_bad_annotations_name_the_file_and_annotation(coco_root: Path, tmp_path: Path,
                                                      edit: dict, match: str) -> None:
    coco = json.loads((coco_root / 'annotations/instances_val.json').read_text())
    coco['annotations'][0].update(edit)
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps(coco))
    with pytest.raises(ValueError, match=match) as err:
        _dataset(coco_root, ann=str(bad))
    assert 'bad.json' in str(err.value) and f"annotation id {coco['annotations'][0]['id']}" in \
        str(err.value)
