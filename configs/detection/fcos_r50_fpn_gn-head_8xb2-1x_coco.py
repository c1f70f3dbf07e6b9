# FCOS R50 + densekit.FPN (extra levels on the output, ReLU before them) with a GN head, COCO 1x.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/coco_detection.py',
          '../_base_/schedules/schedule_1x.py']
task = 'det'
data_preprocessor = dict(type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32)
resnet50 = dict(type='mmdet.ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3),
                frozen_stages=1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True,
                style='pytorch',
                init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50'))
visualizer = dict(type='mmdet.DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
model = dict(
    type='mmdet.FCOS',
    data_preprocessor=data_preprocessor,
    backbone=resnet50,
    neck=dict(type='densekit.FPN', in_channels=[256, 512, 1024, 2048], out_channels=256,
              start_level=1, add_extra_convs='on_output', num_outs=5,
              relu_before_extra_convs=True),
    bbox_head=dict(
        type='mmdet.FCOSHead', num_classes=80, in_channels=256, stacked_convs=4,
        feat_channels=256, strides=[8, 16, 32, 64, 128],
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
        loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='mmdet.IoULoss', loss_weight=1.0),
        loss_centerness=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001),
                     paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=0.0),
                     clip_grad=dict(max_norm=35, norm_type=2))
log_processor = dict(by_epoch=True)
