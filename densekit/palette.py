"""Colours for pictures: class palettes for label maps, box colours and medical label colours.

Every caller draws from here so a class has the same colour in inference output, the report and
the browser. The colours are fixed (seeded), never random per run.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

__all__ = ['LABEL_COLOURS', 'class_palette', 'box_palette', 'label_colours']

#: RGB colours of volume labels (index 0, background, is black); shared by every 3-D picture.
LABEL_COLOURS = np.array([[0, 0, 0], [60, 180, 75], [230, 25, 75], [255, 225, 25],
                          [0, 130, 200], [245, 130, 48], [145, 30, 180]], np.uint8)
LABEL_COLOURS.setflags(write=False)


def _count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f'{name} must be a non-negative int, got {value!r}')
    return int(value)


def class_palette(num_classes: int, palette: Optional[Sequence[Sequence[int]]] = None
                  ) -> np.ndarray:
    """``(num_classes, 3)`` uint8 RGB colours: ``palette`` extended with fixed random ones.

    The given colours come first (all of them, even past ``num_classes``); the rest are drawn
    from ``default_rng(0)`` in ``[0, 256)`` and the result is clipped to ``[0, 255]``.
    """
    count = _count(num_classes, 'num_classes')
    given = np.asarray(palette if palette is not None and len(palette) else np.zeros((0, 3)),
                       np.int64).reshape(-1, 3)
    extra = np.random.default_rng(0).integers(0, 256, (max(count - len(given), 0), 3))
    return np.concatenate([given, extra]).clip(0, 255).astype(np.uint8)


def box_palette(num_classes: int) -> np.ndarray:
    """``(max(num_classes, 1), 3)`` int64 RGB colours of detection boxes.

    Drawn from ``default_rng(1)`` in ``[60, 256)`` so boxes are never too dark to see.
    """
    count = _count(num_classes, 'num_classes')
    return np.random.default_rng(1).integers(60, 256, (max(count, 1), 3))


def label_colours(labels: np.ndarray) -> np.ndarray:
    """The :data:`LABEL_COLOURS` colour of every integer label (wrapping past the last one)."""
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f'labels must be an integer array, got dtype {labels.dtype}')
    return LABEL_COLOURS[labels % len(LABEL_COLOURS)]
