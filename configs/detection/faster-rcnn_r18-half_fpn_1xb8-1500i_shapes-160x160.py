# Faster R-CNN with a half-width ResNet-18 (mmdet ResNet) and densekit.FPN, CPU-sized.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/shapes_coco.py',
          '../_base_/schedules/det_cpu_iters.py']
task = 'det'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='mmdet.FasterRCNN',
    data_preprocessor=dict(type='mmdet.DetDataPreprocessor', mean=[127.5, 127.5, 127.5],
                           std=[64.0, 64.0, 64.0], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='mmdet.ResNet', depth=18, base_channels=32, num_stages=4,
                  out_indices=(0, 1, 2, 3), frozen_stages=-1, norm_cfg=norm_cfg, norm_eval=False,
                  style='pytorch'),
    neck=dict(type='densekit.FPN', in_channels='auto', out_channels=64, num_outs=5),
    rpn_head=dict(
        type='mmdet.RPNHead', in_channels='auto', feat_channels=64,
        anchor_generator=dict(type='mmdet.AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
                              strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(type='mmdet.DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0],
                        target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='mmdet.L1Loss', loss_weight=1.0)),
    roi_head=dict(
        type='mmdet.StandardRoIHead',
        bbox_roi_extractor=dict(type='mmdet.SingleRoIExtractor',
                                roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                                out_channels=64, featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(type='mmdet.Shared2FCBBoxHead', in_channels=64, fc_out_channels=256,
                       roi_feat_size=7, num_classes=6,
                       bbox_coder=dict(type='mmdet.DeltaXYWHBBoxCoder',
                                       target_means=[0.0, 0.0, 0.0, 0.0],
                                       target_stds=[0.1, 0.1, 0.2, 0.2]),
                       reg_class_agnostic=False,
                       loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False,
                                     loss_weight=1.0),
                       loss_bbox=dict(type='mmdet.L1Loss', loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(assigner=dict(type='mmdet.MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3,
                               min_pos_iou=0.3, match_low_quality=True, ignore_iof_thr=-1),
                 sampler=dict(type='mmdet.RandomSampler', num=128, pos_fraction=0.5,
                              neg_pos_ub=-1, add_gt_as_proposals=False),
                 allowed_border=-1, pos_weight=-1, debug=False),
        rpn_proposal=dict(nms_pre=1000, max_per_img=500, nms=dict(type='nms', iou_threshold=0.7),
                          min_bbox_size=0),
        rcnn=dict(assigner=dict(type='mmdet.MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                                min_pos_iou=0.5, match_low_quality=False, ignore_iof_thr=-1),
                  sampler=dict(type='mmdet.RandomSampler', num=128, pos_fraction=0.25,
                               neg_pos_ub=-1, add_gt_as_proposals=True),
                  pos_weight=-1, debug=False)),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300, nms=dict(type='nms', iou_threshold=0.7),
                 min_bbox_size=0),
        rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)))
visualizer = dict(type='mmdet.DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
