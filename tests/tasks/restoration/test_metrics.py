"""PSNR/SSIM against scikit-image on the same arrays, RGB and BT.601 Y, with crop_border."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.structures import BaseDataElement
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from densekit.tasks.restoration.color import rgb2y_numpy
from densekit.tasks.restoration.metrics import PSNR, SSIM, psnr, ssim
from tests.restoration_threads import idle_threads  # noqa: F401


def _pair(seed: int = 0, shape: tuple = (48, 60, 3)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = (np.linspace(0, 255, shape[1])[None, :, None] * np.ones(shape)).astype(np.float64)
    gt = np.clip(base + rng.normal(0, 20, shape), 0, 255).astype(np.uint8)
    pred = np.clip(gt + rng.normal(0, 8, shape), 0, 255).astype(np.uint8)
    return pred, gt


def _sk_ssim(a: np.ndarray, b: np.ndarray, **kw) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=255, **kw)


@pytest.mark.parametrize('crop', [0, 2, 4])
def test_psnr_and_ssim_match_skimage_rgb_and_y(crop: int) -> None:
    pred, gt = _pair(crop)
    sl = (slice(crop, -crop or None), slice(crop, -crop or None))
    a, b = pred[sl].astype(np.float64), gt[sl].astype(np.float64)
    assert psnr(pred, gt, crop) == pytest.approx(
        peak_signal_noise_ratio(b, a, data_range=255), abs=1e-3)
    assert ssim(pred, gt, crop) == pytest.approx(_sk_ssim(a, b, channel_axis=2), abs=1e-3)
    ya, yb = rgb2y_numpy(pred)[sl], rgb2y_numpy(gt)[sl]
    assert psnr(pred, gt, crop, 'y') == pytest.approx(
        peak_signal_noise_ratio(yb, ya, data_range=255), abs=1e-3)
    assert ssim(pred, gt, crop, 'y') == pytest.approx(_sk_ssim(ya, yb), abs=1e-3)


def test_known_values_and_errors() -> None:
    assert psnr(np.zeros((4, 4)), np.full((4, 4), 255.0)) == pytest.approx(0.0)
    assert psnr(np.zeros((4, 4)), np.zeros((4, 4))) == float('inf')
    assert ssim(np.full((16, 16), 9.0), np.full((16, 16), 9.0)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match='same shape'):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match='convert_to'):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), convert_to='lab')
    with pytest.raises(ValueError, match='crop_border'):
        psnr(np.zeros((4, 4)), np.zeros((4, 4)), crop_border=2)
    with pytest.raises(ValueError, match='crop_border'):
        PSNR(crop_border=-1)


def test_registered_metrics_quantise_and_average() -> None:
    preds, gts = zip(*(_pair(seed) for seed in range(3)))
    samples = []
    for pred, gt in zip(preds, gts):
        sample = BaseDataElement(
            pred_img=torch.from_numpy(pred.transpose(2, 0, 1) / 255.0 + 0.3 / 255),  # rounds away
            gt_img=torch.from_numpy(gt.transpose(2, 0, 1) / 255.0))
        samples.append(sample.to_dict())
    psnr_metric, ssim_metric = PSNR(crop_border=2, convert_to='y'), SSIM(crop_border=2)
    psnr_metric.process({}, samples)
    ssim_metric.process({}, samples)
    result = psnr_metric.evaluate(3)
    assert list(result) == ['psnr_y']
    expected = np.mean([psnr(p, g, 2, 'y') for p, g in zip(preds, gts)])
    assert result['psnr_y'] == pytest.approx(expected, abs=1e-6)
    expected_ssim = np.mean([ssim(p, g, 2) for p, g in zip(preds, gts)])
    assert ssim_metric.evaluate(3)['ssim'] == pytest.approx(expected_ssim, abs=1e-9)
