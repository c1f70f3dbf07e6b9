"""Drawing helpers shared by ``densekit browse``, ``densekit analyze`` and the demo report.

All pictures are ``(H, W, 3)`` uint8 **RGB** arrays; :func:`png_bytes` encodes one.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from densekit.imageio import encode_image

__all__ = ['png_bytes', 'colourise', 'overlay', 'legend', 'draw_boxes', 'zoom',
           'pick_crop', 'labelled_row', 'stack_rows', 'pad_to_width']

FONT = cv2.FONT_HERSHEY_SIMPLEX


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG encoding of an RGB uint8 picture."""
    return encode_image(rgb, '.png', rgb=True, what='a picture')


def colourise(labels: np.ndarray, palette: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """Class-index map -> RGB by ``palette``; ``ignore_index`` (and unknown values) white."""
    labels = np.asarray(labels).astype(np.int64)
    out = np.full((*labels.shape, 3), 255, np.uint8)
    known = (labels >= 0) & (labels < len(palette)) & (labels != ignore_index)
    out[known] = palette[labels[known]]
    return out


def overlay(image: np.ndarray, labels: np.ndarray, palette: np.ndarray, alpha: float = 0.5,
            ignore_index: int = 255) -> np.ndarray:
    """``image`` with the coloured ``labels`` blended over it (ignored pixels left as is)."""
    colour = colourise(labels, palette, ignore_index).astype(np.float32)
    keep = (np.asarray(labels) == ignore_index)[..., None]
    mixed = (1 - alpha) * image.astype(np.float32) + alpha * colour
    return np.where(keep, image, mixed).clip(0, 255).astype(np.uint8)


def legend(names: Sequence[str], palette: np.ndarray, width: int = 0,
           swatch: int = 18) -> np.ndarray:
    """A strip of colour swatches with class names, wrapped to ``width`` pixels."""
    items = []
    for index, name in enumerate(names):
        text = f'{index} {name}'
        (tw, _), _ = cv2.getTextSize(text, FONT, 0.5, 1)
        items.append((text, tuple(int(c) for c in palette[index % len(palette)]), tw))
    width = width or sum(swatch + tw + 20 for _, _, tw in items)
    rows, row, used = [], [], 0
    for item in items:
        need = swatch + item[2] + 20
        if row and used + need > width:
            rows.append(row)
            row, used = [], 0
        row.append(item)
        used += need
    rows.append(row)
    height = swatch + 8
    canvas = np.full((height * len(rows), max(width, 1), 3), 255, np.uint8)
    for r, entries in enumerate(rows):
        x, y = 4, r * height + 4
        for text, colour, tw in entries:
            cv2.rectangle(canvas, (x, y), (x + swatch, y + swatch), colour, -1)
            cv2.rectangle(canvas, (x, y), (x + swatch, y + swatch), (0, 0, 0), 1)
            cv2.putText(canvas, text, (x + swatch + 5, y + swatch - 4), FONT, 0.5, (0, 0, 0), 1,
                        cv2.LINE_AA)
            x += swatch + tw + 20
    return canvas


def draw_boxes(image: np.ndarray, boxes: np.ndarray, labels: Sequence[int],
               names: Sequence[str], palette: np.ndarray,
               scores: Optional[Sequence[float]] = None, thickness: int = 2,
               font_scale: float = 0.45) -> np.ndarray:
    """Draw ``(N, 4)`` xyxy boxes with their class names (and scores) on a copy of ``image``."""
    out = np.ascontiguousarray(image.copy())
    for index, (box, label) in enumerate(zip(np.asarray(boxes).reshape(-1, 4), labels)):
        colour = tuple(int(c) for c in palette[int(label) % len(palette)])
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thickness)
        name = names[int(label)] if int(label) < len(names) else str(int(label))
        text = name if scores is None else f'{name} {float(scores[index]):.2f}'
        (tw, th), _ = cv2.getTextSize(text, FONT, font_scale, 1)
        ty = y0 - 3 if y0 - th - 4 >= 0 else y0 + th + 3
        cv2.rectangle(out, (x0, ty - th - 2), (x0 + tw + 2, ty + 2), colour, -1)
        cv2.putText(out, text, (x0 + 1, ty), FONT, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def zoom(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement (pixels stay visible)."""
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f'factor={factor!r}: expected an integer >= 1')
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def pick_crop(reference: np.ndarray, size: int, other: Optional[np.ndarray] = None
              ) -> Tuple[int, int, int, int]:
    """The ``size`` x ``size`` window (y0, x0, y1, x1) with the most detail in ``reference``,
    or with the largest difference to ``other`` when given."""
    h, w = reference.shape[:2]
    size = min(size, h, w)
    grey = reference.astype(np.float32).mean(-1) if reference.ndim == 3 else reference
    if other is not None:
        energy = np.abs(reference.astype(np.float32) - other.astype(np.float32))
        energy = energy.mean(-1) if energy.ndim == 3 else energy
    else:
        energy = np.abs(cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F))
    score = cv2.boxFilter(energy, -1, (size, size), normalize=False,
                          borderType=cv2.BORDER_CONSTANT)
    half = size // 2
    valid = score[half:h - (size - half) + 1, half:w - (size - half) + 1]
    cy, cx = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(cy), int(cx), int(cy) + size, int(cx) + size


def labelled_row(panels: Sequence[np.ndarray], labels: Sequence[str], gap: int = 6,
                 font_scale: float = 0.55) -> np.ndarray:
    """Panels side by side, each with a caption above (panels of unequal height top-aligned)."""
    if len(panels) != len(labels) or not panels:
        raise ValueError(f'need one label per panel, got {len(panels)} panels and '
                         f'{len(labels)} labels')
    height = max(p.shape[0] for p in panels)
    caption = 24
    columns = []
    for panel, label in zip(panels, labels):
        canvas = np.full((height + caption, panel.shape[1], 3), 255, np.uint8)
        canvas[caption:caption + panel.shape[0]] = panel
        cv2.putText(canvas, label, (3, 17), FONT, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
        columns += [canvas, np.full((height + caption, gap, 3), 255, np.uint8)]
    return np.concatenate(columns[:-1], axis=1)


def pad_to_width(picture: np.ndarray, width: int) -> np.ndarray:
    """Pad with white on the right to ``width`` pixels."""
    if picture.shape[1] >= width:
        return picture
    pad = np.full((picture.shape[0], width - picture.shape[1], 3), 255, np.uint8)
    return np.concatenate([picture, pad], axis=1)


def stack_rows(rows: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    """Pictures one above the other, left-aligned on a white background."""
    if not rows:
        raise ValueError('rows=[]: nothing to stack')
    width = max(r.shape[1] for r in rows)
    parts = []
    for row in rows:
        parts += [pad_to_width(row, width), np.full((gap, width, 3), 255, np.uint8)]
    return np.concatenate(parts[:-1], axis=0)
