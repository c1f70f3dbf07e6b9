"""Segmentation transforms densekit adds to mmseg pipelines."""
from __future__ import annotations

from mmcv.transforms import BaseTransform

from densekit.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CheckLabelSize(BaseTransform):
    """Refuse a label map whose size differs from its image (place after LoadAnnotations).

    mmseg would otherwise crop or pad the pair inconsistently, or fail later inside a loss with
    a shape error that names neither file.
    """

    def transform(self, results: dict) -> dict:  # noqa: D102
        image, label = results.get('img'), results.get('gt_seg_map')
        if image is not None and label is not None and image.shape[:2] != label.shape[:2]:
            raise ValueError(
                f"label map {results.get('seg_map_path')!r} is {label.shape[1]}x{label.shape[0]} "
                f"(WxH) but its image {results.get('img_path')!r} is "
                f'{image.shape[1]}x{image.shape[0]}; they must have the same size')
        return results
