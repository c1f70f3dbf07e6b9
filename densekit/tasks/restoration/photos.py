"""Built-in restoration data: the real photographs scikit-image ships, degraded and paired.

No download: ``skimage.data`` bundles these files. Photos are split into fixed train and
validation lists (held-out photos never appear in training), cropped to a multiple of 12 so
x2, x3 and x4 inputs align, and written as paired folders::

    root/{train,val}/GT/<name>.png            target, RGB uint8 (grayscale photos as RGB)
    root/{train,val}/LRx{2,3,4}/<name>.png    MATLAB-bicubic downsampled input
    root/{train,val}/rain_{light,heavy}/...   synthetic rain (Rain100L / Rain200H style)
    root/meta.json                            generator settings; regeneration is skipped
                                              when they are unchanged

Everything is seeded: the same version writes byte-identical files.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Callable, Dict, Sequence, Tuple, Union

import numpy as np

from densekit.fileio import atomic_write_bytes, atomic_write_text
from densekit.imageio import encode_image
from densekit.tasks.restoration.imresize import imresize
from densekit.tasks.restoration.rain import add_rain

__all__ = ['TRAIN_PHOTOS', 'VAL_PHOTOS', 'SCALES', 'RAIN_STYLES', 'load_photo',
           'generate_restoration_photos']

GENERATOR_VERSION = 2
SCALES = (2, 3, 4)
RAIN_STYLES = ('light', 'heavy')
TRAIN_PHOTOS: Tuple[str, ...] = (
    'astronaut', 'rocket', 'motorcycle_left', 'motorcycle_right', 'hubble_deep_field', 'retina',
    'immunohistochemistry', 'brick', 'grass', 'gravel', 'coins', 'page', 'moon', 'cell')
VAL_PHOTOS: Tuple[str, ...] = ('chelsea', 'coffee', 'camera')
EXTRA_PHOTOS: Tuple[str, ...] = ('microaneurysms', 'clock')  # available, in neither split


def _loaders() -> Dict[str, Callable[[], np.ndarray]]:
    from skimage import data

    loaders: Dict[str, Callable[[], np.ndarray]] = {
        name: getattr(data, name) for name in (*TRAIN_PHOTOS, *VAL_PHOTOS, *EXTRA_PHOTOS)
        if not name.startswith('motorcycle')}
    loaders['motorcycle_left'] = lambda: data.stereo_motorcycle()[0]
    loaders['motorcycle_right'] = lambda: data.stereo_motorcycle()[1]
    return loaders


def load_photo(name: str, multiple: int = 12) -> np.ndarray:
    """The ``(H, W, 3)`` uint8 RGB photo ``name``, cropped to a multiple of ``multiple``.

    Raises:
        ValueError: ``name`` is not a built-in photo.
    """
    loaders = _loaders()
    if name not in loaders:
        raise ValueError(f'unknown photo {name!r}; built-in photos: {sorted(loaders)}')
    image = np.asarray(loaders[name]())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = image[..., :3].astype(np.uint8)
    h, w = (image.shape[0] // multiple) * multiple, (image.shape[1] // multiple) * multiple
    return np.ascontiguousarray(image[:h, :w])


def _write_png(image: np.ndarray, path: Path) -> None:
    atomic_write_bytes(encode_image(image, '.png', rgb=True, what=str(path)), path)


def generate_restoration_photos(root: Union[str, Path], seed: int = 0, force: bool = False,
                                train: Sequence[str] = TRAIN_PHOTOS,
                                val: Sequence[str] = VAL_PHOTOS) -> Path:
    """Write the built-in paired SR and deraining folders under ``root``; returns ``root``.

    Args:
        root: Output folder (e.g. ``data/restoration/photos``).
        seed: Seed of the rain synthesis.
        force: Regenerate even if ``meta.json`` matches.
        train: Training photo names (default :data:`TRAIN_PHOTOS`).
        val: Held-out photo names (default :data:`VAL_PHOTOS`); must not overlap ``train``.

    Raises:
        ValueError: Unknown photo names, or a photo in both splits.

    Example:
        >>> root = generate_restoration_photos('data/restoration/photos')  # doctest: +SKIP
        >>> sorted(p.name for p in (root / 'val').iterdir())  # doctest: +SKIP
        ['GT', 'LRx2', 'LRx3', 'LRx4', 'rain_heavy', 'rain_light']
    """
    root = Path(root)
    known = _loaders()
    for name in (*train, *val):
        if name not in known:
            raise ValueError(f'unknown photo {name!r}; built-in photos: {sorted(known)}')
    if set(train) & set(val):
        raise ValueError(f'photos {sorted(set(train) & set(val))} are in both train and val')
    meta = dict(version=GENERATOR_VERSION, seed=seed, train=list(train), val=list(val),
                scales=list(SCALES), rain=list(RAIN_STYLES))
    meta_path = root / 'meta.json'
    if not force and meta_path.is_file() and json.loads(meta_path.read_text()) == meta:
        return root
    folders = ['GT', *(f'LRx{s}' for s in SCALES), *(f'rain_{s}' for s in RAIN_STYLES)]
    for split in ('train', 'val'):  # drop files of an earlier, different generation
        for folder in folders:
            for stale in (root / split / folder).glob('*.png'):
                stale.unlink()
    for split, names in (('train', train), ('val', val)):
        for name in names:
            gt = load_photo(name)
            _write_png(gt, root / split / 'GT' / f'{name}.png')
            for scale in SCALES:
                _write_png(imresize(gt, 1.0 / scale), root / split / f'LRx{scale}' / f'{name}.png')
            for style in RAIN_STYLES:
                rng = np.random.default_rng([seed, zlib.crc32(f'{name}/{style}'.encode())])
                _write_png(add_rain(gt, style, rng=rng), root / split / f'rain_{style}' /
                           f'{name}.png')
    atomic_write_text(json.dumps(meta, indent=2), meta_path)
    return root

