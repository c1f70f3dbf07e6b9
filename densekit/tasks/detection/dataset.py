"""mmdet COCO datasets that refuse malformed annotations instead of silently dropping them.

mmdet's ``CocoDataset`` skips an annotation whose box lies outside the image, has a
non-positive size, or whose category is not in the metainfo. Such an annotation is almost
always a conversion bug, so densekit raises a ``ValueError`` naming the annotation file, the
image and the annotation id.
"""
from __future__ import annotations

from mmdet.datasets import CocoDataset as MMDetCocoDataset

from densekit.registry import DATASETS
from densekit.tasks.detection.synthetic import DET_CLASSES
from densekit.tasks.segmentation.synthetic import PALETTE


@DATASETS.register_module(name='CocoDataset')
class CheckedCocoDataset(MMDetCocoDataset):
    """mmdet ``CocoDataset`` with annotation validation (``type='densekit.CocoDataset'``)."""

    def _check(self, img_info: dict, ann: dict) -> None:
        where = (f"annotation id {ann.get('id')} of image {img_info.get('file_name')!r} in "
                 f'{self.ann_file!r}')
        bbox = ann.get('bbox')
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4):
            raise ValueError(f'{where}: bbox must be [x, y, w, h], got {bbox!r}')
        x, y, w, h = (float(v) for v in bbox)
        width, height = img_info['width'], img_info['height']
        if w <= 0 or h <= 0:
            raise ValueError(f'{where}: bbox {bbox} has a non-positive width or height')
        if x < 0 or y < 0 or x + w > width + 1e-3 or y + h > height + 1e-3:
            raise ValueError(f'{where}: bbox {bbox} (x, y, w, h) lies outside the '
                             f'{width}x{height} image')
        if ann.get('category_id') not in self.cat_ids:
            raise ValueError(f"{where}: category_id {ann.get('category_id')!r} is not one of the "
                             f'categories of metainfo classes {tuple(self.metainfo["classes"])} '
                             f'(ids {sorted(self.cat_ids)})')

    def parse_data_info(self, raw_data_info: dict) -> dict:  # noqa: D102
        for ann in raw_data_info['raw_ann_info']:
            if not ann.get('ignore', False):
                self._check(raw_data_info['raw_img_info'], ann)
        return super().parse_data_info(raw_data_info)


@DATASETS.register_module()
class ShapesCocoDataset(CheckedCocoDataset):
    """The built-in synthetic shapes detection data (see ``synthetic.py``)."""

    METAINFO = dict(classes=DET_CLASSES, palette=[tuple(c) for c in PALETTE[1:]])
