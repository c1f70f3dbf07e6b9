"""Shared pieces of the backbone tests: a tiny mmdet RetinaNet around a backbone and a batch."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from densekit.registry import MODELS


def tiny_retinanet(backbone: dict, in_channels: Sequence[int]) -> nn.Module:
    """RetinaNet (densekit.FPN, 16 channels, one anchor per place) over ``backbone``'s levels."""
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='mmdet.RetinaNet',
        data_preprocessor=dict(type='mmdet.DetDataPreprocessor', mean=[127.5] * 3,
                               std=[64.0] * 3, pad_size_divisor=32),
        backbone=backbone,
        neck=dict(type='densekit.FPN', in_channels=list(in_channels), out_channels=16,
                  start_level=0, add_extra_convs='on_input', num_outs=4),
        bbox_head=dict(
            type='mmdet.RetinaHead', num_classes=2, in_channels=16, stacked_convs=1,
            feat_channels=16,
            anchor_generator=dict(type='mmdet.AnchorGenerator', octave_base_scale=4,
                                  scales_per_octave=1, ratios=[1.0], strides=[8, 16, 32, 64]),
            bbox_coder=dict(type='mmdet.DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                            target_stds=[1.0] * 4),
            loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                          loss_weight=1.0),
            loss_bbox=dict(type='mmdet.L1Loss', loss_weight=1.0)),
        train_cfg=dict(assigner=dict(type='mmdet.MaxIoUAssigner', pos_iou_thr=0.5,
                                     neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1),
                       sampler=dict(type='mmdet.PseudoSampler'), allowed_border=-1,
                       pos_weight=-1, debug=False),
        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                      nms=dict(type='nms', iou_threshold=0.5), max_per_img=10)))


def tiny_det_batch(boxes: Sequence[Sequence[float]]) -> dict:
    """Two 64x64 uint8 images, each with ``boxes`` labelled 0, 1, ... (xyxy pixels)."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    samples = []
    for _ in range(2):
        sample = DetDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32),
                                           labels=torch.arange(len(boxes)))
        samples.append(sample)
    return dict(inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8) for _ in range(2)],
                data_samples=samples)
