"""albumentations wrapper (image/mask/boxes consistent) and kornia batch augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from mmdet.structures.bbox import HorizontalBoxes

from densekit.augment import Albu, KorniaBatchAugment, KorniaSegDataPreProcessor


def _scene() -> dict:
    img = np.zeros((60, 80, 3), np.uint8)
    mask = np.zeros((60, 80), np.uint8)
    img[10:30, 5:25] = 200
    mask[10:30, 5:25] = 1
    img[40:55, 60:78] = 90
    mask[40:55, 60:78] = 2
    boxes = HorizontalBoxes(torch.tensor([[5., 10., 25., 30.], [60., 40., 78., 55.]]))
    return dict(img=img, gt_seg_map=mask, gt_bboxes=boxes, img_shape=(60, 80),
                gt_bboxes_labels=np.array([0, 1]), gt_ignore_flags=np.array([False, True]))


def _mask_box(mask: np.ndarray, cls: int) -> list[float]:
    ys, xs = np.nonzero(mask == cls)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_flip_moves_image_mask_and_boxes_together() -> None:
    out = Albu([dict(type='HorizontalFlip', p=1.0)])(_scene())
    assert isinstance(out['gt_bboxes'], HorizontalBoxes)
    boxes = out['gt_bboxes'].tensor.numpy()
    for row, cls in zip(boxes, (1, 2)):
        assert np.allclose(row, _mask_box(out['gt_seg_map'], cls))
        assert (out['img'][out['gt_seg_map'] == cls] > 0).all()
    assert out['gt_bboxes_labels'].tolist() == [0, 1]
    assert out['gt_ignore_flags'].tolist() == [False, True]


def test_crop_drops_boxes_with_their_labels_and_flags() -> None:
    out = Albu([dict(type='Crop', x_min=0, y_min=0, x_max=40, y_max=40)])(_scene())
    assert out['img'].shape == (40, 40, 3) and out['img_shape'] == (40, 40)
    assert out['gt_seg_map'].shape == (40, 40)
    assert out['gt_bboxes'].tensor.tolist() == [[5., 10., 25., 30.]]
    assert out['gt_bboxes_labels'].tolist() == [0]
    assert out['gt_ignore_flags'].tolist() == [False]


def test_albu_in_mmseg_and_mmdet_pipelines(shapes_root) -> None:
    from mmengine.dataset import Compose

    seg = Compose([dict(type='LoadImageFromFile'), dict(type='mmseg.LoadAnnotations'),
                   dict(type='densekit.Albu', transforms=[dict(type='VerticalFlip', p=1.0)]),
                   dict(type='mmseg.PackSegInputs')])
    path = shapes_root / 'img_dir/val/00000.png'
    label = shapes_root / 'ann_dir/val/00000.png'
    packed = seg(dict(img_path=str(path), seg_map_path=str(label), reduce_zero_label=False,
                      seg_fields=[]))
    import cv2
    want = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)[::-1]
    assert np.array_equal(packed['data_samples'].gt_sem_seg.data[0].numpy(), want)


@pytest.mark.parametrize('bad,exc', [([], ValueError), ([dict(type='NoSuchAug')], ValueError),
                                     (['flip'], TypeError)])
def test_bad_albu_config(bad: list, exc: type) -> None:
    with pytest.raises(exc, match='transforms'):
        Albu(bad)


def test_kornia_flip_moves_masks_with_images() -> None:
    aug = KorniaBatchAugment([dict(type='RandomHorizontalFlip', p=1.0)])
    images = torch.rand(2, 3, 8, 10)
    masks = torch.randint(0, 5, (2, 1, 8, 10))
    out_img, out_mask = aug(images, masks)
    assert torch.allclose(out_img, images.flip(-1))
    assert torch.equal(out_mask, masks.flip(-1)) and out_mask.dtype == masks.dtype


def test_kornia_preprocessor_augments_only_in_training() -> None:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    pre = KorniaSegDataPreProcessor(kornia_augments=[dict(type='RandomVerticalFlip', p=1.0)],
                                    mean=[0, 0, 0], std=[1, 1, 1], size=(8, 8))
    img = torch.randint(0, 255, (3, 8, 8), dtype=torch.uint8)
    label = torch.randint(0, 3, (1, 8, 8))
    def batch() -> dict:
        sample = SegDataSample(gt_sem_seg=PixelData(data=label.clone()))
        sample.set_metainfo(dict(img_shape=(8, 8), pad_shape=(8, 8)))
        return dict(inputs=[img.clone()], data_samples=[sample])
    train = pre(batch(), training=True)
    test = pre(batch(), training=False)
    assert torch.allclose(train['inputs'], test['inputs'].flip(-2))
    assert torch.equal(train['data_samples'][0].gt_sem_seg.data, label.flip(-2))
