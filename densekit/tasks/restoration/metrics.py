"""PSNR and SSIM as the super-resolution literature computes them, plus mmengine metrics.

Both work on ``(H, W)`` or ``(H, W, C)`` arrays in ``[0, data_range]``:

* ``crop_border`` pixels are removed from every side first (the SR convention: the scale);
* ``convert_to='y'`` compares the BT.601 Y channel (MATLAB ``rgb2ycbcr``) of RGB images;
* SSIM uses an 11x11 Gaussian window with sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03`` and population
  statistics, averaged over the valid window positions and over channels; it equals
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255)``.

:class:`PSNR` and :class:`SSIM` are registered mmengine metrics reading ``pred_img`` and
``gt_img`` (``(C, H, W)`` tensors in ``[0, 1]``) from the model's predictions; predictions are
quantised to the data range's integer levels first, as saved images would be.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric

from densekit.registry import METRICS
from densekit.tasks.restoration.color import rgb2y_numpy

__all__ = ['psnr', 'ssim', 'PSNR', 'SSIM', 'to_hwc_array']

_CONVERT = (None, 'y', 'Y')


def _prepare(img1: np.ndarray, img2: np.ndarray, crop_border: int,
             convert_to: Optional[str], data_range: float) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(img1), np.asarray(img2)
    if a.shape != b.shape:
        raise ValueError(f'images must have the same shape, got {a.shape} and {b.shape}')
    if a.ndim not in (2, 3):
        raise ValueError(f'images must be (H, W) or (H, W, C), got shape {a.shape}')
    if not isinstance(crop_border, int) or crop_border < 0:
        raise ValueError(f'crop_border must be an int >= 0, got {crop_border!r}')
    if convert_to not in _CONVERT:
        raise ValueError(f"convert_to must be None or 'y', got {convert_to!r}")
    if convert_to and (a.ndim != 3 or a.shape[2] != 3):
        raise ValueError(f"convert_to='y' needs (H, W, 3) RGB images, got shape {a.shape}")
    if convert_to:
        a, b = rgb2y_numpy(a, data_range), rgb2y_numpy(b, data_range)
    a, b = a.astype(np.float64), b.astype(np.float64)
    if crop_border:
        if min(a.shape[:2]) <= 2 * crop_border:
            raise ValueError(f'crop_border={crop_border} leaves nothing of a {a.shape[:2]} '
                             'image')
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    return a, b


def psnr(img1: np.ndarray, img2: np.ndarray, crop_border: int = 0,
         convert_to: Optional[str] = None, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for identical images).

    Example:
        >>> round(psnr(np.zeros((8, 8)), np.full((8, 8), 1.0)), 2)
        48.13
    """
    a, b = _prepare(img1, img2, crop_border, convert_to, data_range)
    mse = np.mean((a - b) ** 2)
    return math.inf if mse == 0 else 10.0 * math.log10(data_range ** 2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def ssim(img1: np.ndarray, img2: np.ndarray, crop_border: int = 0,
         convert_to: Optional[str] = None, data_range: float = 255.0) -> float:
    """Structural similarity (Wang et al. 2004) with the SR literature's settings.

    Example:
        >>> ssim(np.eye(16) * 255, np.eye(16) * 255)
        1.0
    """
    a, b = _prepare(img1, img2, crop_border, convert_to, data_range)
    if min(a.shape[:2]) < 11:
        raise ValueError(f'SSIM needs images of at least 11x11 after cropping, got {a.shape[:2]}')
    x = torch.from_numpy(a if a.ndim == 2 else a.transpose(2, 0, 1).copy())
    y = torch.from_numpy(b if b.ndim == 2 else b.transpose(2, 0, 1).copy())
    x, y = x.reshape(-1, 1, *x.shape[-2:]), y.reshape(-1, 1, *y.shape[-2:])
    g = _gaussian_window()

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable 'valid' Gaussian filtering
        t = F.conv2d(t, g.view(1, 1, -1, 1))
        return F.conv2d(t, g.view(1, 1, 1, -1))

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / \
        ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean(dim=(1, 2, 3)).mean())


def to_hwc_array(image: torch.Tensor, data_range: float = 255.0, quantize: bool = True
                 ) -> np.ndarray:
    """``(C, H, W)`` tensor in [0, 1] -> ``(H, W, C)`` float64 array in ``[0, data_range]``."""
    if image.dim() != 3:
        raise ValueError(f'image must be (C, H, W), got shape {tuple(image.shape)}')
    arr = image.detach().to('cpu', torch.float64).clamp(0, 1).permute(1, 2, 0).numpy()
    arr = arr * data_range
    return np.floor(arr + 0.5) if quantize else arr


class _ImageMetric(BaseMetric):
    """Shared plumbing of :class:`PSNR` and :class:`SSIM`."""

    metric_name = ''
    default_prefix = ''  # keys are plain ``psnr``, ``ssim_y``, ... unless a prefix is given

    def __init__(self, crop_border: Union[int, str] = 0, convert_to: Optional[str] = None,
                 data_range: float = 255.0, quantize: bool = True,
                 pred_key: str = 'pred_img', gt_key: str = 'gt_img',
                 collect_device: str = 'cpu', prefix: Optional[str] = None,
                 per_scale: bool = False) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if crop_border != 'scale' and (not isinstance(crop_border, int) or crop_border < 0):
            raise ValueError(f"crop_border must be an int >= 0 or 'scale', got {crop_border!r}")
        if convert_to not in _CONVERT:
            raise ValueError(f"convert_to must be None or 'y', got {convert_to!r}")
        if not data_range > 0:
            raise ValueError(f'data_range must be > 0, got {data_range!r}')
        self.crop_border, self.convert_to = crop_border, convert_to
        self.data_range, self.quantize = float(data_range), quantize
        self.pred_key, self.gt_key = pred_key, gt_key
        self.per_scale = bool(per_scale)

    def _score(self, pred: np.ndarray, gt: np.ndarray, crop_border: int) -> float:
        raise NotImplementedError

    @staticmethod
    def _scale(sample: dict) -> int:
        scale = sample.get('scale', sample.get('metainfo', {}).get('scale'))
        if scale is None:
            raise KeyError("crop_border='scale' and per_scale=True need a 'scale' in each "
                           'prediction (PackRestorationInputs keeps it in the metainfo)')
        return int(scale)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:  # noqa: D102
        for sample in data_samples:
            if self.pred_key not in sample or self.gt_key not in sample:
                raise KeyError(f'{type(self).__name__} needs {self.pred_key!r} and '
                               f'{self.gt_key!r} in each prediction, got {sorted(sample)}')
            pred = to_hwc_array(sample[self.pred_key], self.data_range, self.quantize)
            gt = to_hwc_array(sample[self.gt_key], self.data_range, True)
            if pred.shape[2] == 1:
                pred, gt = pred[..., 0], gt[..., 0]
            needs_scale = self.per_scale or self.crop_border == 'scale'
            scale = self._scale(sample) if needs_scale else 0
            crop = scale if self.crop_border == 'scale' else self.crop_border
            self.results.append((scale, self._score(pred, gt, crop)))

    def compute_metrics(self, results: list) -> dict:  # noqa: D102
        key = f"{self.metric_name}{'_y' if self.convert_to else ''}"
        if not self.per_scale:
            return {key: float(np.mean([value for _, value in results]))}
        return {f'{key}_x{scale}': float(np.mean([v for s, v in results if s == scale]))
                for scale in sorted({s for s, _ in results})}


@METRICS.register_module()
class PSNR(_ImageMetric):
    """Mean PSNR (dB) over the evaluated images; key ``psnr`` or ``psnr_y``.

    Args:
        crop_border: Pixels cropped from each side (use the SR scale), or ``'scale'``: each
            sample's own scale (mixed-scale validation).
        convert_to: ``None`` (all channels) or ``'y'`` (BT.601 luma).
        data_range: Peak value (255 for 8-bit evaluation).
        quantize: Round predictions to integer levels first, as a saved image would be.
        per_scale: One mean per sample scale, keys ``psnr_y_x2``, ``psnr_y_x3``, ...
    """

    metric_name = 'psnr'

    def _score(self, pred: np.ndarray, gt: np.ndarray, crop_border: int) -> float:
        value = psnr(pred, gt, crop_border, self.convert_to, self.data_range)
        return min(value, 100.0)  # identical images would make the mean infinite


@METRICS.register_module()
class SSIM(_ImageMetric):
    """Mean SSIM over the evaluated images; key ``ssim`` or ``ssim_y`` (see :func:`ssim`)."""

    metric_name = 'ssim'

    def _score(self, pred: np.ndarray, gt: np.ndarray, crop_border: int) -> float:
        return ssim(pred, gt, crop_border, self.convert_to, self.data_range)
