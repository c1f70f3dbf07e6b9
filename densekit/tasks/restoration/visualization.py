"""Side-by-side pictures of restoration results, and the hook ``densekit test --show-dir`` uses.

:func:`side_by_side` lays out equally sized RGB panels with a caption strip each (e.g. input,
bicubic, output, ground truth). :class:`RestorationVisualizationHook` draws, for each evaluated
image, the input (nearest-neighbour enlarged to the output size), the prediction and the
target, and hands the picture to the runner's visualizer.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Optional, Sequence

import cv2
import numpy as np
from mmengine.hooks import Hook

from densekit.errors import positive_int
from densekit.registry import HOOKS

__all__ = ['side_by_side', 'to_uint8', 'RestorationVisualizationHook']


def to_uint8(image: Any) -> np.ndarray:
    """``(C, H, W)`` tensor in [0, 1] -> ``(H, W, 3)`` uint8 RGB."""
    arr = image.detach().float().cpu().clamp(0, 1).numpy().transpose(1, 2, 0)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.floor(arr * 255 + 0.5).astype(np.uint8)


def side_by_side(panels: Sequence[np.ndarray], labels: Sequence[str], gap: int = 4
                 ) -> np.ndarray:
    """Concatenate ``(H, W, 3)`` uint8 panels horizontally with a caption above each.

    Example:
        >>> side_by_side([np.zeros((8, 8, 3), np.uint8)] * 2, ['a', 'b']).shape
        (30, 20, 3)
    """
    if len(panels) != len(labels) or not panels:
        raise ValueError(f'need one label per panel, got {len(panels)} panels and '
                         f'{len(labels)} labels')
    height = max(p.shape[0] for p in panels)
    columns = []
    for panel, label in zip(panels, labels):
        canvas = np.full((height + 22, panel.shape[1], 3), 255, np.uint8)
        canvas[22:22 + panel.shape[0]] = panel
        cv2.putText(canvas, label, (3, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
        columns += [canvas, np.full((height + 22, gap, 3), 255, np.uint8)]
    return np.concatenate(columns[:-1], axis=1)


@HOOKS.register_module()
class RestorationVisualizationHook(Hook):
    """Draw input / output / target panels of evaluated images (``draw=True`` to enable).

    Args:
        draw: Whether to draw (``densekit test --show-dir`` switches it on).
        interval: Draw every ``interval``-th batch.
    """

    priority = 'NORMAL'

    def __init__(self, draw: bool = False, interval: int = 1) -> None:
        positive_int(interval, 'interval')
        self.draw, self.interval = draw, interval

    def _draw(self, runner: Any, batch_idx: int, data_batch: Optional[dict],
              outputs: Optional[Sequence[Any]]) -> None:
        if not self.draw or not outputs or batch_idx % self.interval or data_batch is None:
            return
        for raw, sample in zip(data_batch['inputs'], outputs):
            peak = float(sample.metainfo.get('max_value', 255.0))
            pred = to_uint8(sample.pred_img)
            lq = to_uint8(raw.float() / peak)
            ry, rx = pred.shape[0] // lq.shape[0], pred.shape[1] // lq.shape[1]
            lq = np.repeat(np.repeat(lq, max(ry, 1), axis=0), max(rx, 1), axis=1)
            panels, labels = [lq, pred], ['input', 'output']
            if 'gt_img' in sample:
                panels.append(to_uint8(sample.gt_img))
                labels.append('ground truth')
            name = osp.splitext(osp.basename(str(sample.metainfo.get('gt_path', 'image'))))[0]
            runner.visualizer.add_image(name, side_by_side(panels, labels))

    def after_val_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                       outputs: Any = None) -> None:  # noqa: D102
        self._draw(runner, batch_idx, data_batch, outputs)

    def after_test_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                        outputs: Any = None) -> None:  # noqa: D102
        self._draw(runner, batch_idx, data_batch, outputs)
