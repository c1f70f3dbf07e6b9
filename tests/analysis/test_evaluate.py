"""``densekit analyze`` for detection, medical and restoration on few-iteration checkpoints, with
the peers' evaluators as oracles (mmdet CocoMetric classwise, MedicalSegMetric, densekit.PSNR)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import REPO

CONFIGS = REPO / 'configs'
DET = CONFIGS / 'detection' / 'retinanet_r18-half_fpn_1xb8-2000i_shapes-160x160.py'
MED = CONFIGS / 'medical3d' / 'resunet-tiny_1xb2-600i_phantoms-48x48x48.py'
SR = CONFIGS / 'restoration' / 'edsr_x2c32b8_1xb4-4min_photos.py'


def _roots(root: Path) -> dict:
    return {f'{loader}.dataset.data_root': str(root)
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')}


def _train(config: Path, options: dict, work: Path, iters: int = 2) -> tuple:
    from densekit.apis import load_config, train

    cfg = load_config(str(config), {**options, 'train_cfg.max_iters': iters,
                                    'train_cfg.val_interval': iters,
                                    'default_hooks.checkpoint.interval': iters}, str(work))
    cfg.custom_hooks = [h for h in cfg.custom_hooks if 'budget_s' not in h]
    train(cfg)
    return cfg, str(work / f'iter_{iters}.pth')


def test_coco_per_class_ap_matches_mmdet_classwise(tmp_path: Path) -> None:
    """Non-trivial detections (ground truth, class k shifted k pixels, one class dropped):
    per-class AP from densekit.analysis equals mmdet's CocoMetric(classwise=True)."""
    import torch
    from mmdet.evaluation import CocoMetric
    from pycocotools.coco import COCO

    from densekit.analysis.evaluate import coco_per_class
    from densekit.tasks.detection import generate_detection_dataset

    root = generate_detection_dataset(tmp_path / 'coco', num_train=1, num_val=12)
    ann = str(root / 'annotations' / 'instances_val.json')
    coco = COCO(ann)
    cats = sorted(coco.getCatIds())
    names = [coco.loadCats(c)[0]['name'] for c in cats]
    detections, samples = [], []
    rng = np.random.default_rng(0)
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        boxes, scores, labels = [], [], []
        for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id)):
            k = cats.index(a['category_id'])
            if k == len(cats) - 1:
                continue  # the last class is never detected: AP 0
            x, y, w, h = a['bbox']
            shift = float(k)
            score = float(rng.uniform(0.3, 1.0))
            detections.append(dict(image_id=img_id, category_id=a['category_id'],
                                   bbox=[x + shift, y, w, h], score=score))
            boxes.append([x + shift, y, x + shift + w, y + h])
            scores.append(score)
            labels.append(k)
        samples.append(dict(img_id=img_id, ori_shape=(info['height'], info['width']),
                            pred_instances=dict(bboxes=torch.tensor(boxes).reshape(-1, 4),
                                                scores=torch.tensor(scores),
                                                labels=torch.tensor(labels, dtype=torch.long))))
    ours = coco_per_class(coco, detections)
    metric = CocoMetric(ann_file=ann, classwise=True)
    metric.dataset_meta = dict(classes=names)
    metric.process({}, samples)
    peer = metric.evaluate(len(samples))
    aps = [ours['per_class'][n]['AP'] for n in names]
    assert aps[0] == pytest.approx(1.0) and aps[-1] == 0.0 and 0 < min(aps[1:-1]) < 1
    for name in names:
        assert ours['per_class'][name]['AP'] == pytest.approx(
            peer[f'coco/{name}_precision'], abs=5e-4), name
    assert ours['mAP'] == pytest.approx(peer['coco/bbox_mAP'], abs=5e-4)


@pytest.mark.slow  # ~25 s: trains RetinaNet 2 iterations and evaluates twice
def test_analyze_det_writes_per_class_ap_and_pr_curve(tmp_path: Path) -> None:
    from densekit.analysis.evaluate import analyze
    from densekit.tasks.detection import generate_detection_dataset

    root = generate_detection_dataset(tmp_path / 'coco', num_train=4, num_val=3)
    ann = str(root / 'annotations' / 'instances_val.json')
    options = {**_roots(root), 'val_evaluator.ann_file': ann, 'test_evaluator.ann_file': ann,
               'train_dataloader.batch_size': 2, 'default_hooks.logger.interval': 1,
               'model.test_cfg.score_thr': 0.0}
    cfg, checkpoint = _train(DET, options, tmp_path / 'work')
    from densekit.apis import test

    summary = analyze(cfg, checkpoint, tmp_path / 'out')
    metrics = test(cfg, checkpoint)  # mmdet's CocoMetric on the same checkpoint
    assert summary['mAP'] == pytest.approx(metrics['coco/bbox_mAP'], abs=5e-4)
    rows = list(csv.reader((tmp_path / 'out' / 'per_class_ap.csv').open()))
    assert rows[0] == ['class', 'AP', 'AP50', 'AP75'] and len(rows) == 1 + len(
        summary['per_class'])
    assert summary['detections'] > 0 and 0 <= summary['mAP'] <= 1
    picture = cv2.imread(str(tmp_path / 'out' / 'pr_curve.png'))
    assert picture.shape[:2] == (450, 600)
    assert json.loads((tmp_path / 'out' / 'summary.json').read_text())['task'] == 'det'


@pytest.mark.slow  # ~35 s: two sliding-window passes over the validation phantoms
def test_analyze_medical_per_case_csv_agrees_with_the_metric(tmp_path: Path) -> None:
    from densekit.analysis.evaluate import analyze
    from densekit.apis import test
    from densekit.tasks.medical3d.phantoms import generate_phantoms

    root = generate_phantoms(tmp_path / 'ph', num_train=2, num_val=2, num_test=0,
                             fov_mm=(40.0, 56.0, 56.0))
    options = {**_roots(root), 'train_dataloader.num_workers': 0,
               'train_dataloader.persistent_workers': False,
               'param_scheduler.0.end': 1, 'param_scheduler.1.begin': 1,
               'param_scheduler.1.end': 2}
    cfg, checkpoint = _train(MED, options, tmp_path / 'work')
    summary = analyze(cfg, checkpoint, tmp_path / 'out', split='val')
    rows = list(csv.DictReader((tmp_path / 'out' / 'per_case.csv').open()))
    assert [r['case_id'] for r in rows] == [c['case_id'] for c in summary['cases']]
    assert len(rows) == 2 and {'dice_organ', 'hd95_lesion', 'dice_mean'} <= set(rows[0])
    metrics = test(cfg, checkpoint)
    assert summary['dice'] == pytest.approx(metrics['dice'], abs=1e-6)
    assert summary['hd95'] == pytest.approx(metrics['hd95'], rel=1e-6)


@pytest.mark.slow  # ~12 s: trains EDSR 3 iterations, restores and evaluates twice
def test_analyze_sr_per_image_psnr_and_crops(tmp_path: Path) -> None:
    from densekit.analysis.evaluate import analyze
    from densekit.apis import test
    from densekit.tasks.restoration.photos import generate_restoration_photos

    root = generate_restoration_photos(tmp_path / 'photos', train=('page',),
                                       val=('microaneurysms', 'camera'))
    options = {**_roots(root), 'model.backbone.channels': 8, 'model.backbone.num_blocks': 1,
               'model.head.in_channels': 8, 'train_dataloader.batch_size': 2}
    cfg, checkpoint = _train(SR, options, tmp_path / 'work', iters=3)
    summary = analyze(cfg, checkpoint, tmp_path / 'out', split='val')
    rows = list(csv.DictReader((tmp_path / 'out' / 'per_image.csv').open()))
    assert sorted(r['image'] for r in rows) == ['camera', 'microaneurysms']
    metrics = test(cfg, checkpoint)  # densekit.PSNR on the Y channel, crop_border 2
    assert summary['psnr'] == pytest.approx(metrics['psnr_y'], abs=0.01)
    assert summary['ssim'] == pytest.approx(metrics['ssim_y'], abs=1e-3)
    crops = cv2.imread(str(tmp_path / 'out' / 'crops.png'))
    assert crops.shape[0] >= 2 * (48 * 4 + 24)  # two rows of 4x zoomed 48-px crops
    assert crops.shape[1] >= 3 * 48 * 4
