"""Dice and HD95 agree with MONAI on random masks; empty masks follow densekit's convention."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from densekit.tasks.medical3d import MedicalSegMetric, dice_score, hd95

monai_metrics = pytest.importorskip('monai.metrics')


def _one_hot(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([~mask, mask]))[None].float()


def _monai(pred: np.ndarray, gt: np.ndarray, spacing) -> tuple:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        hd = monai_metrics.HausdorffDistanceMetric(include_background=False, percentile=95,
                                                   distance_metric='euclidean')
        hd(_one_hot(pred), _one_hot(gt), spacing=spacing)
        dice = monai_metrics.DiceMetric(include_background=False, ignore_empty=False)
        dice(_one_hot(pred), _one_hot(gt))
        return float(dice.aggregate()), float(hd.aggregate())


@pytest.mark.parametrize('seed', range(5))
def test_random_masks_match_monai(seed):
    rng = np.random.default_rng(seed)
    shape = (18, 22, 26)
    pred = gaussian_filter(rng.random(shape), 2) > 0.52
    gt = gaussian_filter(rng.random(shape), 2) > 0.51
    spacing = tuple(rng.uniform(0.5, 3.0, 3))
    monai_dice, monai_hd = _monai(pred, gt, spacing)
    assert dice_score(pred, gt) == pytest.approx(monai_dice, abs=1e-6)
    assert hd95(pred, gt, spacing) == pytest.approx(monai_hd, rel=1e-5)


def test_known_geometry_and_empty_masks():
    a = np.zeros((10, 10, 10), bool)
    a[2:6, 2:6, 2:6] = True
    shifted = np.roll(a, 3, axis=2)  # every surface point moves 3 voxels along x
    assert hd95(a, shifted, spacing=(1.0, 1.0, 0.5)) == pytest.approx(1.5)
    assert dice_score(a, shifted) == pytest.approx(2 * 4 * 4 * 1 / 128)
    empty = np.zeros_like(a)
    assert dice_score(empty, empty) == 1.0 and hd95(empty, empty) == 0.0
    assert dice_score(a, empty) == 0.0
    diagonal = np.sqrt(10 ** 2 + 20 ** 2 + 30 ** 2)
    assert hd95(empty, a, spacing=(1, 2, 3)) == pytest.approx(diagonal)
    assert hd95(a, empty, spacing=(1, 2, 3)) == pytest.approx(diagonal)


def test_metric_aggregates_per_class_over_cases():
    metric = MedicalSegMetric()
    metric.dataset_meta = dict(classes=('background', 'organ', 'lesion'))
    gt = torch.zeros(8, 8, 8, dtype=torch.long)
    gt[2:6, 2:6, 2:6] = 1
    gt[3:5, 3:5, 3:5] = 2
    perfect = dict(pred_seg=gt.clone(), gt_seg=gt, spacing=(1.0, 1.0, 1.0))
    no_lesion = dict(pred_seg=(gt > 0).long(), gt_seg=gt, spacing=(1.0, 1.0, 1.0))
    metric.process({}, [perfect, no_lesion])
    out = metric.compute_metrics(metric.results)
    organ_dice = dice_score((gt > 0).long() == 1, gt == 1)
    assert out['dice_organ'] == pytest.approx((1 + organ_dice) / 2)
    assert out['dice_lesion'] == pytest.approx(0.5)
    assert out['dice'] == pytest.approx((out['dice_organ'] + out['dice_lesion']) / 2)
    assert out['hd95_lesion'] == pytest.approx(np.sqrt(3) * 8 / 2)  # 0 and the diagonal
