"""Per-class Dice and 95th-percentile Hausdorff distance for label volumes.

Definitions (they match MONAI's ``DiceMetric`` and ``HausdorffDistanceMetric(percentile=95)``
with euclidean distances and the same spacing, wherever both masks are non-empty):

* Dice of class ``c``: ``2 |P & G| / (|P| + |G|)``.
* Surfaces: the mask minus its binary erosion (6-connected structuring element, voxels outside
  the volume count as background, so masks touching the border have a surface there).
* HD95: the larger of the two directed 95th percentiles (linear interpolation) of the
  euclidean distances (in mm, using ``spacing``) from each surface voxel of one mask to the
  nearest surface voxel of the other.

**Empty masks** (explicit densekit convention):

=====================  ==========  =====================================================
prediction / truth     Dice        HD95
=====================  ==========  =====================================================
both empty             1.0         0.0
one of them empty      0.0         the volume's diagonal in mm (the worst possible value)
=====================  ==========  =====================================================

MONAI instead gives NaN (Dice with ``ignore_empty=True``; HD95 when both are empty) or inf
(HD95 when one is empty); finite values keep per-class means defined and penalise a missed or
hallucinated structure.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from densekit.lazy import lazy_module
from densekit.registry import METRICS

ndimage = lazy_module('scipy.ndimage')

__all__ = ['dice_score', 'hd95', 'surface', 'MedicalSegMetric']

ArrayLike = Union[np.ndarray, torch.Tensor]


def _np(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def dice_score(pred: ArrayLike, gt: ArrayLike) -> float:
    """Dice of two boolean masks of the same shape (both empty -> 1.0, one empty -> 0.0).

    Example:
        >>> dice_score(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
        0.6666666666666666
    """
    p, g = _np(pred).astype(bool), _np(gt).astype(bool)
    if p.shape != g.shape:
        raise ValueError(f'pred shape {p.shape} differs from gt shape {g.shape}')
    total = int(p.sum()) + int(g.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(p, g).sum()) / total


def surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels: ``mask`` minus its 6-connected erosion (outside = background)."""
    mask = mask.astype(bool)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def _directed(src: np.ndarray, dst: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distances from every ``src`` voxel to the nearest ``dst`` voxel (both non-empty)."""
    both = src | dst
    lo = [int(a.min()) for a in np.nonzero(both)]
    hi = [int(a.max()) + 1 for a in np.nonzero(both)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    dist = ndimage.distance_transform_edt(~dst[box], sampling=spacing)
    return dist[src[box]]


def hd95(pred: ArrayLike, gt: ArrayLike, spacing: Optional[Sequence[float]] = None,
         percentile: float = 95.0) -> float:
    """95th-percentile symmetric Hausdorff distance (mm) between two masks.

    Args:
        pred: Boolean mask ``(D, H, W)`` (any number of dims).
        gt: Boolean mask of the same shape.
        spacing: Voxel size per axis (default 1).
        percentile: Percentile of the surface distances (100 = classic Hausdorff).

    Returns:
        The distance; 0.0 if both are empty, the volume diagonal if exactly one is.

    Example:
        >>> a = np.zeros((8, 8, 8), bool); a[2:5, 2:5, 2:5] = True
        >>> hd95(a, np.roll(a, 2, axis=0), spacing=(2.0, 1.0, 1.0))
        4.0
    """
    p, g = _np(pred).astype(bool), _np(gt).astype(bool)
    if p.shape != g.shape:
        raise ValueError(f'pred shape {p.shape} differs from gt shape {g.shape}')
    spacing = tuple(float(s) for s in (spacing if spacing is not None else (1.0,) * p.ndim))
    if len(spacing) != p.ndim:
        raise ValueError(f'spacing {spacing} needs one value per axis of shape {p.shape}')
    if not 0 <= percentile <= 100:
        raise ValueError(f'percentile must be in [0, 100], got {percentile!r}')
    has_p, has_g = bool(p.any()), bool(g.any())
    if not has_p and not has_g:
        return 0.0
    if has_p != has_g:
        return float(np.sqrt(sum((n * s) ** 2 for n, s in zip(p.shape, spacing))))
    sp, sg = surface(p), surface(g)
    d_pg = _directed(sp, sg, spacing)
    d_gp = _directed(sg, sp, spacing)
    q = percentile / 100.0
    return float(max(np.quantile(d_pg, q), np.quantile(d_gp, q)))


@METRICS.register_module()
class MedicalSegMetric(BaseMetric):
    """Per-class Dice and HD95 over whole volumes, averaged over cases.

    Reads ``pred_seg`` and ``gt_seg`` (``(D, H, W)`` label tensors) and ``spacing`` from each
    predicted data sample. Reports ``dice`` (mean over foreground classes of the per-case mean),
    ``dice_<class>``, and with ``hd95=True`` ``hd95`` / ``hd95_<class>`` (mm). Empty masks
    follow the module docstring's convention.

    Args:
        hd95: Also compute HD95 (costs a distance transform per class and case).
        collect_device: mmengine's.
        prefix: mmengine's.
    """

    default_prefix: Optional[str] = ''  # metric names without a prefix: 'dice', 'hd95'

    def __init__(self, hd95: bool = True, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.with_hd95 = hd95

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:  # noqa: D102
        for sample in data_samples:
            pred, gt = _np(sample['pred_seg']), _np(sample['gt_seg'])
            if pred.shape != gt.shape:
                raise ValueError(f'case {sample.get("case_id")}: prediction {pred.shape} and '
                                 f'ground truth {gt.shape} differ in shape')
            classes = (self.dataset_meta or {}).get('classes')
            num = len(classes) if classes else int(max(pred.max(), gt.max())) + 1
            spacing = sample.get('spacing') or (1.0,) * gt.ndim
            row: Dict[str, List[float]] = {'dice': [], 'hd95': []}
            for c in range(1, num):
                row['dice'].append(dice_score(pred == c, gt == c))
                if self.with_hd95:
                    row['hd95'].append(hd95(pred == c, gt == c, spacing))
            self.results.append(row)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:  # noqa: D102
        classes = (self.dataset_meta or {}).get('classes')
        dice = np.array([r['dice'] for r in results], dtype=np.float64)
        names = list(classes[1:]) if classes else [str(c) for c in range(1, dice.shape[1] + 1)]
        out = {'dice': float(dice.mean())}
        out.update({f'dice_{n}': float(v) for n, v in zip(names, dice.mean(0))})
        if self.with_hd95:
            hd = np.array([r['hd95'] for r in results], dtype=np.float64)
            out['hd95'] = float(hd.mean())
            out.update({f'hd95_{n}': float(v) for n, v in zip(names, hd.mean(0))})
        return out
