"""mmdet COCO datasets that refuse malformed annotations instead of silently dropping them.

mmdet's ``CocoDataset`` skips an annotation whose box lies outside the image, has a
non-positive size, or whose category is not in the metainfo. Such an annotation is almost
always a conversion bug, so densekit raises a ``ValueError`` naming the annotation file, the
image and the annotation id.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

from mmdet.datasets import CocoDataset as MMDetCocoDataset

from densekit.registry import DATASETS
from densekit.tasks.detection.synthetic import DET_CLASSES
from densekit.tasks.segmentation.synthetic import PALETTE


def annotation_problems(img_info: dict, ann: dict, cat_ids: Sequence[int],
                        classes: Sequence[str]) -> List[Tuple[str, str]]:
    """Every problem of one COCO annotation as ``(code, message)`` (empty when it is valid).

    Codes: ``BOX_INVALID`` (not 4 numbers, or a non-positive size), ``BOX_OUTSIDE_IMAGE`` and
    ``CATEGORY_UNKNOWN``.

    Checks the box shape ``[x, y, w, h]``, a positive size, that it lies inside the
    ``width`` x ``height`` of ``img_info``, and that ``category_id`` is one of ``cat_ids`` (the
    categories of ``classes``). :class:`CheckedCocoDataset` raises on the first problem;
    ``densekit check-data`` reports them all.
    """
    problems = []
    bbox = ann.get('bbox')
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4):
        problems.append(('BOX_INVALID', f'bbox must be [x, y, w, h], got {bbox!r}'))
    else:
        try:
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError):
            problems.append(('BOX_INVALID', f'bbox must hold 4 numbers, got {bbox!r}'))
        else:
            width, height = img_info.get('width'), img_info.get('height')
            if w <= 0 or h <= 0:
                problems.append(('BOX_INVALID', f'bbox {bbox} has a non-positive width or height'))
            elif (isinstance(width, (int, float)) and isinstance(height, (int, float))
                  and (x < 0 or y < 0 or x + w > width + 1e-3 or y + h > height + 1e-3)):
                problems.append(('BOX_OUTSIDE_IMAGE', f'bbox {bbox} (x, y, w, h) lies outside '
                                 f'the {width}x{height} image'))
    if ann.get('category_id') not in cat_ids:
        problems.append(('CATEGORY_UNKNOWN',
                         f"category_id {ann.get('category_id')!r} is not one of the categories "
                         f'of metainfo classes {tuple(classes)} (ids {sorted(cat_ids)})'))
    return problems


@DATASETS.register_module(name='CocoDataset')
class CheckedCocoDataset(MMDetCocoDataset):
    """mmdet ``CocoDataset`` with annotation validation (``type='densekit.CocoDataset'``)."""

    def _check(self, img_info: dict, ann: dict) -> None:
        problems = annotation_problems(img_info, ann, self.cat_ids, self.metainfo['classes'])
        if problems:
            where = (f"annotation id {ann.get('id')} of image {img_info.get('file_name')!r} in "
                     f'{self.ann_file!r}')
            raise ValueError(f'{where}: {problems[0][1]}')

    def parse_data_info(self, raw_data_info: dict) -> dict:  # noqa: D102
        for ann in raw_data_info['raw_ann_info']:
            if not ann.get('ignore', False):
                self._check(raw_data_info['raw_img_info'], ann)
        return super().parse_data_info(raw_data_info)


@DATASETS.register_module()
class ShapesCocoDataset(CheckedCocoDataset):
    """The built-in synthetic shapes detection data (see ``synthetic.py``)."""

    METAINFO = dict(classes=DET_CLASSES, palette=[tuple(c) for c in PALETTE[1:]])
