"""Pictures of volumes: axial, coronal and sagittal slices with a label overlay.

Slices are taken in the canonical (RAS) orientation through a chosen voxel, drawn in radiological
habit (anterior / superior up) and stretched to the physical voxel aspect, so anisotropic
volumes look right.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from densekit.palette import LABEL_COLOURS, label_colours
from densekit.tasks.medical3d.preprocess import to_canonical, voxel_spacing

__all__ = ['render_slices', 'LABEL_COLOURS']



def _panel(image: np.ndarray, labels: np.ndarray, aspect: Tuple[float, float],
           height: int, alpha: float) -> np.ndarray:
    lo, hi = np.percentile(image, (1, 99))
    grey = np.clip((image - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, -1).astype(np.float32)
    colour = label_colours(labels).astype(np.float32)
    mask = (labels > 0)[..., None]
    rgb = np.where(mask, (1 - alpha) * rgb + alpha * colour, rgb)
    rows, cols = image.shape
    width = int(round(height * (cols * aspect[1]) / (rows * aspect[0])))
    out = cv2.resize(rgb.astype(np.uint8), (max(width, 1), height),
                     interpolation=cv2.INTER_NEAREST)
    return out


def render_slices(image: np.ndarray, labels: np.ndarray, affine: np.ndarray,
                  centre: Optional[Sequence[int]] = None, height: int = 256,
                  alpha: float = 0.45) -> np.ndarray:
    """Axial | coronal | sagittal slices of ``image`` with ``labels`` overlaid.

    Args:
        image: ``(X, Y, Z)`` intensities in file voxel order.
        labels: ``(X, Y, Z)`` integer labels on the same grid.
        affine: The file's 4x4 affine.
        centre: Canonical ``(z, y, x)`` voxel to slice through (default: the labels'
            foreground centroid, or the volume centre).
        height: Panel height in pixels.
        alpha: Overlay opacity.

    Returns:
        ``(height, W, 3)`` uint8 BGR picture (for ``cv2.imwrite``).
    """
    if image.shape != labels.shape or image.ndim != 3:
        raise ValueError(f'image {image.shape} and labels {labels.shape} must be the same 3D '
                         f'shape')
    img, ornt = to_canonical(np.asarray(image, np.float32), affine)
    lab, _ = to_canonical(np.asarray(labels).astype(np.int64), affine)
    spacing_xyz = voxel_spacing(affine)[np.argsort(ornt[:, 0])]
    sz, sy, sx = spacing_xyz[::-1]
    if centre is None:
        fg = np.argwhere(lab > 0)
        centre = fg.mean(0).round().astype(int) if len(fg) else np.array(lab.shape) // 2
    z, y, x = (int(c) for c in centre)
    axial = _panel(img[z, ::-1], lab[z, ::-1], (sy, sx), height, alpha)      # anterior up
    coronal = _panel(img[::-1, y], lab[::-1, y], (sz, sx), height, alpha)    # superior up
    sagittal = _panel(img[::-1, :, x], lab[::-1, :, x], (sz, sy), height, alpha)
    gap = np.full((height, 4, 3), 255, np.uint8)
    picture = np.concatenate([axial, gap, coronal, gap, sagittal], axis=1)
    return picture[..., ::-1].copy()
