"""Augmentation shared by the segmentation and detection pipelines.

* :class:`Albu` - a registered transform wrapping an albumentations ``Compose``; image, label
  map and boxes stay consistent, and boxes albumentations drops take their labels and ignore
  flags with them. Works in mmseg and mmdet pipelines.
* :class:`KorniaBatchAugment` - batch augmentation with kornia on the (device) tensors a data
  preprocessor produced; used by :class:`KorniaSegDataPreProcessor`, which runs it on the GPU
  when the model is there.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmseg.models.data_preprocessor import SegDataPreProcessor
from torch import Tensor, nn

from densekit.lazy import lazy_module
from densekit.registry import MODELS, TRANSFORMS

A = lazy_module('albumentations')

__all__ = ['Albu', 'KorniaBatchAugment', 'KorniaSegDataPreProcessor']

_LABEL_FIELDS = ('gt_bboxes_labels', 'gt_ignore_flags')


def _build_albu(spec: Any, argname: str) -> A.BasicTransform:
    if isinstance(spec, A.BasicTransform):
        return spec
    if not isinstance(spec, dict) or 'type' not in spec:
        raise TypeError(f'{argname} entries must be albumentations transforms or dicts with '
                        f"'type', got {spec!r}")
    kwargs = dict(spec)
    name = kwargs.pop('type')
    cls = getattr(A, name, None)
    if cls is None:
        raise ValueError(f'{argname}: albumentations has no transform {name!r}')
    return cls(**kwargs)


@TRANSFORMS.register_module()
class Albu(BaseTransform):
    """Apply an albumentations pipeline to ``img``, ``gt_seg_map`` and ``gt_bboxes``.

    Args:
        transforms: albumentations transforms, as objects or ``dict(type='HorizontalFlip',
            p=0.5)``.
        min_visibility: Drop a box if less than this fraction of it survives a crop.
        min_area: Drop a box smaller than this (pixels) after the transform.

    Boxes are mmdet's ``(x1, y1, x2, y2)`` (albumentations ``pascal_voc``); the result keeps
    mmdet's box type. Example::

        dict(type='densekit.Albu', transforms=[dict(type='HorizontalFlip', p=0.5),
                                               dict(type='RandomBrightnessContrast', p=0.3)])
    """

    def __init__(self, transforms: Sequence[Any], min_visibility: float = 0.0,
                 min_area: float = 0.0) -> None:
        if not isinstance(transforms, (list, tuple)) or not transforms:
            raise ValueError(f'transforms must be a non-empty list, got {transforms!r}')
        self.transforms = [_build_albu(t, 'transforms') for t in transforms]
        self.compose = A.Compose(
            self.transforms,
            bbox_params=A.BboxParams(format='pascal_voc', label_fields=list(_LABEL_FIELDS),
                                     min_visibility=min_visibility, min_area=min_area,
                                     clip=True))

    def transform(self, results: dict) -> dict:  # noqa: D102
        data: dict[str, Any] = dict(image=results['img'])
        has_mask = results.get('gt_seg_map') is not None
        if has_mask:
            data['mask'] = results['gt_seg_map']
        boxes = results.get('gt_bboxes')
        box_type = None
        if boxes is not None:
            box_type = type(boxes)
            array = np.asarray(boxes.tensor if hasattr(boxes, 'tensor') else boxes,
                               np.float32).reshape(-1, 4)
            count = len(array)
            data['bboxes'] = array
            data['gt_bboxes_labels'] = np.asarray(
                results.get('gt_bboxes_labels', np.zeros(count, np.int64)))
            data['gt_ignore_flags'] = np.asarray(
                results.get('gt_ignore_flags', np.zeros(count, bool)))
        else:
            data.update(bboxes=np.zeros((0, 4), np.float32),
                        gt_bboxes_labels=np.zeros(0, np.int64), gt_ignore_flags=np.zeros(0, bool))
        out = self.compose(**data)
        results['img'] = out['image']
        results['img_shape'] = out['image'].shape[:2]
        if has_mask:
            results['gt_seg_map'] = out['mask']
        if box_type is not None:
            new = np.asarray(out['bboxes'], np.float32).reshape(-1, 4)
            results['gt_bboxes'] = (box_type(torch.from_numpy(new))
                                    if hasattr(boxes, 'tensor') else new)
            results['gt_bboxes_labels'] = np.asarray(out['gt_bboxes_labels'], np.int64)
            results['gt_ignore_flags'] = np.asarray(out['gt_ignore_flags'], bool)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.transforms!r})'


class KorniaBatchAugment(nn.Module):
    """kornia ``AugmentationSequential`` over a batch of images and (optionally) label maps.

    Args:
        augments: kornia.augmentation objects or dicts like ``dict(type='RandomHorizontalFlip',
            p=0.5)``. Geometric augmentations move masks with the images (nearest resampling).
    """

    def __init__(self, augments: Sequence[Any]) -> None:
        super().__init__()
        import kornia.augmentation as K

        built = []
        for spec in augments:
            if isinstance(spec, nn.Module):
                built.append(spec)
                continue
            if not isinstance(spec, dict) or 'type' not in spec:
                raise TypeError(f"augments entries must be kornia modules or dicts with 'type', "
                                f'got {spec!r}')
            kwargs = dict(spec)
            cls = getattr(K, kwargs.pop('type'), None)
            if cls is None:
                raise ValueError(f'augments: kornia.augmentation has no {spec["type"]!r}')
            built.append(cls(**kwargs))
        self.sequential = K.AugmentationSequential(*built, data_keys=['input', 'mask'])

    def forward(self, images: Tensor, masks: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """Augment ``images`` (N, C, H, W) float and ``masks`` (N, 1, H, W) together."""
        if masks is None:
            masks = torch.zeros_like(images[:, :1])
        out_img, out_mask = self.sequential(images, masks.float())
        return out_img, out_mask.round().to(masks.dtype)


@MODELS.register_module()
class KorniaSegDataPreProcessor(SegDataPreProcessor):
    """mmseg's ``SegDataPreProcessor`` plus kornia batch augmentation in training.

    The augmentation runs after normalisation and padding, on the device of the batch (the GPU
    when there is one), and moves the label maps with the images.

    Args:
        kornia_augments: See :class:`KorniaBatchAugment`.
        **kwargs: mmseg ``SegDataPreProcessor`` arguments.
    """

    def __init__(self, kornia_augments: Sequence[Any] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kornia = KorniaBatchAugment(kornia_augments) if kornia_augments else None

    def forward(self, data: dict, training: bool = False) -> dict:  # noqa: D102
        data = super().forward(data, training)
        if training and self.kornia is not None:
            samples = data['data_samples']
            masks = torch.stack([s.gt_sem_seg.data for s in samples])
            images, masks = self.kornia(data['inputs'], masks)
            data['inputs'] = images
            for sample, mask in zip(samples, masks):
                sample.gt_sem_seg.data = mask
        return data
