# FCOS (anchor-free) with a half-width ResNet-18 (mmdet ResNet) and densekit.FPN, CPU-sized.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/shapes_coco.py',
          '../_base_/schedules/det_cpu_iters.py']
task = 'det'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='mmdet.FCOS',
    data_preprocessor=dict(type='mmdet.DetDataPreprocessor', mean=[127.5, 127.5, 127.5],
                           std=[64.0, 64.0, 64.0], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='mmdet.ResNet', depth=18, base_channels=32, num_stages=4,
                  out_indices=(1, 2, 3), frozen_stages=-1, norm_cfg=norm_cfg, norm_eval=False,
                  style='pytorch'),
    neck=dict(type='densekit.FPN', in_channels='auto', out_channels=64, start_level=0,
              add_extra_convs='on_output', num_outs=4, relu_before_extra_convs=True),
    bbox_head=dict(
        type='mmdet.FCOSHead', num_classes=6, in_channels='auto', stacked_convs=2, feat_channels=64,
        strides=[8, 16, 32, 64], regress_ranges=((-1, 48), (48, 96), (96, 192), (192, 1e8)),
        norm_on_bbox=True, centerness_on_reg=True, center_sampling=True, center_sample_radius=1.5,
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='mmdet.GIoULoss', loss_weight=1.0),
        loss_centerness=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
visualizer = dict(type='mmdet.DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
