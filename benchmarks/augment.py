"""``densekit bench augment``: densekit.Albu (albumentations) against the same ops in mmcv."""
from __future__ import annotations

from functools import partial
from typing import List

import numpy as np

from benchmarks.harness import Row, suite, time_pair

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def _photo(size: int) -> np.ndarray:
    try:
        import cv2
        from skimage import data
        return cv2.resize(data.astronaut()[..., ::-1], (size, size))
    except ImportError:  # scikit-image is a test extra; any image will do
        return np.random.default_rng(0).integers(0, 255, (size, size, 3), np.uint8)


@suite('augment')
def bench_augment(repeats: int = 5, quick: bool = False) -> List[Row]:
    """Images/s of flip + resize + normalise, albumentations (densekit.Albu) vs mmcv."""
    from mmcv.transforms import Compose, Normalize, RandomFlip, Resize

    from densekit.augment import Albu

    rows = []
    out = 128 if quick else 256
    for size in ((256,) if quick else (512, 1024)):
        image = _photo(size)
        albu = Albu([dict(type='HorizontalFlip', p=1.0),
                     dict(type='Resize', height=out, width=out),
                     dict(type='Normalize', mean=MEAN, std=STD, max_pixel_value=1.0)])
        mmcv = Compose([RandomFlip(prob=1.0, direction='horizontal'),
                        Resize(scale=(out, out), keep_ratio=False),
                        Normalize(mean=MEAN, std=STD, to_rgb=False)])
        batch = 8 if quick else 32

        def run(pipeline: object, image: np.ndarray = image, batch: int = batch) -> None:
            for _ in range(batch):
                pipeline(dict(img=image.copy(), img_shape=image.shape[:2]))

        a = albu(dict(img=image.copy(), img_shape=image.shape[:2]))['img']
        b = mmcv(dict(img=image.copy(), img_shape=image.shape[:2]))['img']
        diff = float(np.abs(a.astype(np.float64) - b).max())
        t_albu, t_mmcv = time_pair(partial(run, albu), partial(run, mmcv), repeats)
        rows.append(Row(f'flip+resize{out}+normalize {size}x{size}', t_albu / batch,
                        t_mmcv / batch, extra={
                            'densekit img/s': f'{batch / t_albu:.0f}',
                            'mmcv img/s': f'{batch / t_mmcv:.0f}',
                            'max |diff|': f'{diff:.3g}'}))
    return rows
