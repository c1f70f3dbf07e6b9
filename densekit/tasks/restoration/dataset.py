"""Paired-folder dataset: degraded inputs and targets matched by file name.

Layout (any folder names, given by ``data_prefix``)::

    data_root/GT/0001.png      target (high resolution / clean)
    data_root/LRx2/0001.png    input (low resolution / rainy), same file name

``lq_template`` maps a target's stem to its input's stem when the names differ (DIV2K's
``0001.png`` -> ``0001x2.png`` is ``lq_template='{}x2'``).

Without an ``lq`` prefix only targets are listed and the pipeline makes the inputs
(``BicubicDegrade``, ``AddRainStreaks``).
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset
from PIL import Image

from densekit.errors import positive_int
from densekit.registry import DATASETS

__all__ = ['PairedImageDataset', 'IMAGE_SUFFIXES', 'list_images']

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def list_images(folder: str) -> List[str]:
    """Sorted image file names in ``folder``.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f'image folder {folder!r} does not exist')
    return sorted(name for name in os.listdir(folder) if name.lower().endswith(IMAGE_SUFFIXES))


def _size(path: str) -> tuple[int, int]:
    with Image.open(path) as image:
        width, height = image.size
    return height, width


@DATASETS.register_module()
class PairedImageDataset(BaseDataset):
    """Pairs ``data_prefix['lq']/NAME`` with ``data_prefix['gt']/NAME``.

    Args:
        data_root: Root folder.
        data_prefix: ``dict(gt='GT', lq='LRx2')``; leave out ``lq`` for on-the-fly degradation.
        scale: Target size / input size (1 for deraining). An input must be ``gt // scale``
            pixels on each side (targets up to ``scale - 1`` pixels larger are mod-cropped).
        lq_template: Input stem from the target stem (``'{}'`` = same name).
        pipeline: Transforms, starting with ``LoadPairImages``.
        test_mode: Passed to mmengine's ``BaseDataset``.
        indices: Keep only these samples (an int keeps the first N).
        lazy_init: Defer listing the files.

    Raises:
        FileNotFoundError: A file without its partner (the message names both paths).
        ValueError: A pair whose sizes do not fit ``scale`` (names both files and sizes).
    """

    def __init__(self, data_root: str, *, data_prefix: Optional[dict] = None, scale: int = 1,
                 lq_template: str = '{}', pipeline: Sequence[Any] = (), test_mode: bool = False,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 lazy_init: bool = False) -> None:
        positive_int(scale, 'scale')
        prefix = dict(data_prefix or dict(gt='GT'))
        unknown = set(prefix) - {'gt', 'lq'}
        if 'gt' not in prefix or unknown:
            raise ValueError(f"data_prefix must have a 'gt' folder and optionally 'lq', "
                             f'got {data_prefix!r}')
        if not isinstance(lq_template, str) or lq_template.count('{}') != 1:
            raise ValueError(f"lq_template must be a string with one '{{}}', got {lq_template!r}")
        self.scale, self.lq_template = scale, lq_template
        super().__init__(data_root=data_root, data_prefix=prefix, pipeline=list(pipeline),
                         test_mode=test_mode, indices=indices, lazy_init=lazy_init,
                         serialize_data=False)

    def _lq_name(self, gt_name: str) -> str:
        stem, ext = osp.splitext(gt_name)
        return self.lq_template.format(stem) + ext

    def _gt_name(self, lq_name: str) -> str:
        stem, ext = osp.splitext(lq_name)
        before, after = self.lq_template.split('{}')
        if stem.startswith(before) and stem.endswith(after) and len(stem) >= len(before + after):
            stem = stem[len(before):len(stem) - len(after)]
        return stem + ext

    def load_data_list(self) -> List[dict]:  # noqa: D102
        gt_dir = self.data_prefix['gt']
        gt_names = list_images(gt_dir)
        if not gt_names:
            raise FileNotFoundError(f'no images in target folder {gt_dir!r}')
        lq_dir = self.data_prefix.get('lq')
        if lq_dir is None:
            return [dict(gt_path=osp.join(gt_dir, name), scale=self.scale, sample_idx=i)
                    for i, name in enumerate(gt_names)]
        lq_names = set(list_images(lq_dir))
        partner = {self._lq_name(name): name for name in gt_names}
        for name in sorted(lq_names - set(partner)):
            expected = osp.join(gt_dir, self._gt_name(name))
            raise FileNotFoundError(f'input {osp.join(lq_dir, name)!r} has no target: '
                                    f'{expected!r} does not exist')
        data_list = []
        for i, name in enumerate(gt_names):
            gt_path, lq_path = osp.join(gt_dir, name), osp.join(lq_dir, self._lq_name(name))
            if self._lq_name(name) not in lq_names:
                raise FileNotFoundError(f'target {gt_path!r} has no input: {lq_path!r} does '
                                        'not exist')
            (gh, gw), (lh, lw) = _size(gt_path), _size(lq_path)
            if (lh, lw) != (gh // self.scale, gw // self.scale):
                raise ValueError(
                    f'input {lq_path!r} is {lh}x{lw} but target {gt_path!r} is {gh}x{gw}; at '
                    f'scale {self.scale} the input must be {gh // self.scale}x'
                    f'{gw // self.scale}')
            data_list.append(dict(lq_path=lq_path, gt_path=gt_path, scale=self.scale,
                                  sample_idx=i))
        return data_list
