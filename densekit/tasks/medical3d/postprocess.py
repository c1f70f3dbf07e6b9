"""Post-processing of label maps: keep the largest connected component per class, decided per
class from cross-validation as nnU-Net does.

* :func:`keep_largest_component` sets every voxel of a listed class outside that class's
  largest connected component (full 3D connectivity) to background.
* :func:`decide_postprocessing` compares, on the held-out predictions of every fold, each
  class's mean Dice with and without the filter and keeps the filter for the classes where
  it helps (strictly better mean Dice), nnU-Net's per-class rule.
* :func:`load_postprocessing` reads the decision from ``plans.json``
  (``postprocessing.keep_largest_component``), which ``densekit infer`` applies.
"""
from __future__ import annotations

import json
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from densekit.lazy import lazy_module

ndimage = lazy_module('scipy.ndimage')

__all__ = ['keep_largest_component', 'decide_postprocessing', 'load_postprocessing']


def keep_largest_component(labels: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """A copy of ``labels`` with only the largest connected component of each of ``classes``.

    Example:
        >>> lab = np.zeros((1, 1, 7), np.uint8); lab[0, 0, [0, 1, 4]] = 1
        >>> keep_largest_component(lab, [1])[0, 0].tolist()
        [1, 1, 0, 0, 0, 0, 0]
    """
    out = np.array(labels, copy=True)
    structure = np.ones((3,) * out.ndim, bool)
    for c in classes:
        if not isinstance(c, (int, np.integer)) or c < 1:
            raise ValueError(f'classes must hold foreground label values >= 1, got {c!r}')
        mask = out == c
        components, count = ndimage.label(mask, structure)
        if count <= 1:
            continue
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        out[mask & (components != int(sizes.argmax()))] = 0
    return out


def _dice(pred: np.ndarray, gt: np.ndarray, c: int) -> Optional[float]:
    p, g = pred == c, gt == c
    denom = int(p.sum()) + int(g.sum())
    return None if denom == 0 else 2.0 * float((p & g).sum()) / denom


def decide_postprocessing(pairs: Sequence[Tuple[np.ndarray, np.ndarray]], num_classes: int
                          ) -> Dict[str, Any]:
    """Per class, keep the largest component where it raises the mean held-out Dice.

    Args:
        pairs: ``(prediction, ground truth)`` label maps of held-out cases.
        num_classes: Classes including background.

    Returns:
        ``{'keep_largest_component': [class values], 'dice_before': {...},
        'dice_after': {...}}`` (mean Dice per class value, as strings).
    """
    keep: List[int] = []
    before: Dict[str, float] = {}
    after: Dict[str, float] = {}
    for c in range(1, num_classes):
        b, a = [], []
        for pred, gt in pairs:
            d0 = _dice(pred, gt, c)
            if d0 is None:
                continue
            b.append(d0)
            d1 = _dice(keep_largest_component(pred, [c]), gt, c)
            a.append(0.0 if d1 is None else d1)
        if not b:
            continue
        before[str(c)], after[str(c)] = float(np.mean(b)), float(np.mean(a))
        if after[str(c)] > before[str(c)]:
            keep.append(c)
    return dict(keep_largest_component=keep, dice_before=before, dice_after=after)


def load_postprocessing(plans_file: Optional[str]) -> List[int]:
    """Class values whose largest component ``plans.json`` says to keep ([] without a file)."""
    if not plans_file or not osp.isfile(plans_file):
        return []
    with open(plans_file) as f:
        plans = json.load(f)
    classes = (plans.get('postprocessing') or {}).get('keep_largest_component') or []
    if not all(isinstance(c, int) and c >= 1 for c in classes):
        raise ValueError(f'{plans_file}: postprocessing.keep_largest_component must list label '
                         f'values >= 1, got {classes!r}')
    return list(classes)
