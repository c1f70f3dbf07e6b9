"""Built-in segmentation data: seeded synthetic shapes written in mmseg's folder layout.

Each image holds a few textured shapes on a smooth, low-contrast background. The class is the
*shape* (disc, square, triangle, star, ring, cross); colours and textures are drawn independently
of the class, so a model has to read geometry, not colour. Shapes do not overlap and always
contrast with the background; images carry Gaussian noise. Layout (what mmseg's
``BaseSegDataset`` reads)::

    root/img_dir/{train,val}/00000.png     RGB uint8
    root/ann_dir/{train,val}/00000.png     uint8 label map, 0 = background
    root/meta.json                         generator settings (re-generation is skipped if equal)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Union

import cv2
import numpy as np

from densekit.fileio import atomic_write_bytes, atomic_write_text
from densekit.imageio import encode_image

CLASSES = ('background', 'disc', 'square', 'triangle', 'star', 'ring', 'cross')
PALETTE = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
           [245, 130, 48], [145, 30, 180]]
GENERATOR_VERSION = 3
# a shape's mean colour differs from the background's by at least this (RGB distance)
MIN_CONTRAST = 60.0
PLACEMENT_ATTEMPTS = 20
Array = np.ndarray


def _polar(yy: Array, xx: Array, cy: float, cx: float, angle: float
           ) -> tuple[Array, Array, Array, Array]:
    dy, dx = yy - cy, xx - cx
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = ca * dx + sa * dy, -sa * dx + ca * dy
    return u, v, np.hypot(u, v), np.arctan2(v, u)


def _disc(u: Array, v: Array, r: Array, t: Array, size: float) -> Array:
    return r <= size


def _square(u: Array, v: Array, r: Array, t: Array, size: float) -> Array:
    half = size * 0.82
    return (np.abs(u) <= half) & (np.abs(v) <= half)


def _triangle(u: Array, v: Array, r: Array, t: Array, size: float) -> Array:
    inside = np.ones_like(u, dtype=bool)
    for k in range(3):  # three half-planes of an equilateral triangle
        a = 2 * np.pi * k / 3
        inside &= (np.cos(a) * u + np.sin(a) * v) <= size * 0.55
    return inside


def _star(u: Array, v: Array, r: Array, t: Array, size: float) -> Array:
    spikes = 0.5 + 0.5 * np.abs(np.cos(2.5 * t))  # five points
    return r <= size * (0.42 + 0.62 * spikes ** 3)


def _ring(u: Array, v: Array, r: Array, t: Array, size: float) -> Array:
    return (r <= size) & (r >= size * 0.55)


def _cross(u: Array, v: Array, r: Array, t: Array, size: float) -> Array:
    arm = size * 0.32
    au, av = np.abs(u), np.abs(v)
    return ((au <= arm) & (av <= size)) | ((av <= arm) & (au <= size))


SHAPES: dict[str, Callable] = {'disc': _disc, 'square': _square, 'triangle': _triangle,
                               'star': _star, 'ring': _ring, 'cross': _cross}


def _texture(rng: np.random.Generator, hw: tuple[int, int], background: bool = False
             ) -> np.ndarray:
    """A random RGB texture in [0, 255]: flat, stripes, checker or blotches in two colours.

    A ``background`` texture is flat or blotchy in two nearby colours (low contrast), so the
    shapes' textures stand out; a shape's texture may be any kind, in any two colours.
    """
    h, w = hw
    c1 = rng.uniform(0, 255, 3)
    if background:
        c2 = np.clip(c1 + rng.uniform(-40, 40, 3), 0, 255)
        kind = (0, 3)[int(rng.integers(2))]
    else:
        c2 = rng.uniform(0, 255, 3)
        kind = int(rng.integers(4))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:
        mix = np.zeros((h, w), np.float32)
    elif kind == 1:
        a, period = rng.uniform(0, np.pi), rng.uniform(4, 12)
        phase = (np.cos(a) * xx + np.sin(a) * yy) * 2 * np.pi / period
        mix = (np.sin(phase) > 0).astype(np.float32)
    elif kind == 2:
        cell = int(rng.integers(3, 9))
        mix = (((yy // cell) + (xx // cell)) % 2).astype(np.float32)
    else:
        low = rng.uniform(0, 1, (max(h // 8, 2), max(w // 8, 2))).astype(np.float32)
        mix = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    return (1 - mix)[..., None] * c1 + mix[..., None] * c2


def render_scene(rng: np.random.Generator, size: int = 128, max_shapes: int = 5
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Render one scene of shapes on a textured background.

    Shapes barely touch (a placement whose circumscribed circle overlaps an earlier one is
    re-drawn, up to a few attempts), so a shape's visible outline is its class's outline.
    Each shape's texture is re-drawn until its mean colour differs from the background's by
    at least :data:`MIN_CONTRAST` (RGB distance), so every boundary is visible.

    Returns:
        ``image`` (HxWx3 uint8), ``label`` (HxW uint8 class map, 0 = background),
        ``instances`` (HxW int32, 0 = background, i = i-th drawn shape where it is visible) and
        ``drawn``: per shape, ``(class index >= 1, full unoccluded area in pixels)``.
    """
    image = _texture(rng, (size, size), background=True)
    label = np.zeros((size, size), np.uint8)
    instances = np.zeros((size, size), np.int32)
    drawn: list[tuple[int, int]] = []
    placed: list[tuple[float, float, float]] = []
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    names = list(SHAPES)
    for _ in range(int(rng.integers(2, max_shapes + 1))):
        cls = int(rng.integers(len(names)))
        for _attempt in range(PLACEMENT_ATTEMPTS):
            radius = rng.uniform(0.11, 0.24) * size
            cy, cx = rng.uniform(radius * 0.6, size - radius * 0.6, 2)
            if all(np.hypot(cy - py, cx - px) >= (radius + pr) * 1.05 for py, px, pr in placed):
                break
        else:
            continue
        placed.append((cy, cx, radius))
        u, v, r, t = _polar(yy, xx, cy, cx, rng.uniform(0, 2 * np.pi))
        mask = SHAPES[names[cls]](u, v, r, t, radius)
        if not mask.any():
            continue
        background_mean = image[mask].mean(0)
        for _attempt in range(PLACEMENT_ATTEMPTS):
            texture = _texture(rng, (size, size))
            if np.linalg.norm(texture[mask].mean(0) - background_mean) >= MIN_CONTRAST:
                break
        image[mask] = texture[mask]
        label[mask] = cls + 1
        instances[mask] = len(drawn) + 1
        drawn.append((cls + 1, int(mask.sum())))
    image += rng.normal(0, rng.uniform(4, 14), image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), label, instances, drawn


def render_sample(rng: np.random.Generator, size: int = 128, max_shapes: int = 5
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Render one (image HxWx3 uint8, label HxW uint8) pair."""
    image, label, _, _ = render_scene(rng, size, max_shapes)
    return image, label


def encode_png(array: np.ndarray) -> bytes:
    """PNG-encode a uint8/uint16 array (BGR channel order for colour)."""
    return encode_image(array, '.png', what='a synthetic sample')


def is_generated(root: Path, meta: dict, *, num_train: int, num_val: int, size: int, seed: int,
                 force: bool) -> bool:
    """Validate a generator's arguments, record them in ``meta`` and tell whether
    ``root/meta.json`` already holds the same settings (so the files can be reused).

    Raises:
        ValueError: If a count or the image size is out of range.
    """
    for name, value, low in (('num_train', num_train, 1), ('num_val', num_val, 1),
                             ('size', size, 32)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f'{name} must be an int >= {low}, got {value!r}')
    meta.update(num_train=num_train, num_val=num_val, size=size, seed=seed)
    meta_file = root / 'meta.json'
    return (not force and meta_file.is_file()
            and json.loads(meta_file.read_text()) == json.loads(json.dumps(meta)))


def generate_shapes_dataset(root: Union[str, Path], *, num_train: int = 200, num_val: int = 40,
                            size: int = 128, seed: int = 0, force: bool = False) -> Path:
    """Write the synthetic shapes dataset under ``root`` and return ``root``.

    The output depends only on the arguments: the same seed gives byte-identical files. If
    ``root/meta.json`` records the same settings the files are reused, unless ``force``.

    Raises:
        ValueError: If a count or the image size is out of range.
    """
    root, meta = Path(root), dict(generator='shapes', version=GENERATOR_VERSION,
                                  classes=list(CLASSES))
    if is_generated(root, meta, num_train=num_train, num_val=num_val, size=size, seed=seed,
                    force=force):
        return root
    for split, count, offset in (('train', num_train, 0), ('val', num_val, 1_000_000)):
        for index in range(count):
            rng = np.random.default_rng([seed, offset + index])
            image, label = render_sample(rng, size)
            name = f'{index:05d}.png'
            atomic_write_bytes(encode_png(image[..., ::-1]), root / 'img_dir' / split / name)
            atomic_write_bytes(encode_png(label), root / 'ann_dir' / split / name)
    atomic_write_text(json.dumps(meta, indent=1), root / 'meta.json')
    return root
