# RetinaNet with a half-width ResNet-18 (mmdet ResNet) and densekit.FPN, CPU-sized, trained from
# scratch on the built-in synthetic shapes (160x160, 6 classes).
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/shapes_coco.py',
          '../_base_/schedules/det_cpu_iters.py']
task = 'det'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='mmdet.RetinaNet',
    data_preprocessor=dict(type='mmdet.DetDataPreprocessor', mean=[127.5, 127.5, 127.5],
                           std=[64.0, 64.0, 64.0], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='mmdet.ResNet', depth=18, base_channels=32, num_stages=4,
                  out_indices=(1, 2, 3), frozen_stages=-1, norm_cfg=norm_cfg, norm_eval=False,
                  style='pytorch'),
    neck=dict(type='densekit.FPN', in_channels='auto', out_channels=64, start_level=0,
              add_extra_convs='on_input', num_outs=4),
    bbox_head=dict(
        type='mmdet.RetinaHead', num_classes=6, in_channels='auto', stacked_convs=2, feat_channels=64,
        anchor_generator=dict(type='mmdet.AnchorGenerator', octave_base_scale=4,
                              scales_per_octave=2, ratios=[0.5, 1.0, 2.0],
                              strides=[8, 16, 32, 64]),
        bbox_coder=dict(type='mmdet.DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0],
                        target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='mmdet.L1Loss', loss_weight=1.0)),
    train_cfg=dict(assigner=dict(type='mmdet.MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
                                 min_pos_iou=0, ignore_iof_thr=-1),
                   sampler=dict(type='mmdet.PseudoSampler'), allowed_border=-1, pos_weight=-1,
                   debug=False),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
# Sized to the 10-minute CPU budget (0.26-0.30 s/iteration on 2 cores): 2000 iterations with
# the cosine decay ending with the run.
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', eta_min=1e-5, begin=100, end=2000, T_max=1900,
         by_epoch=False),
]
train_cfg = dict(max_iters=2000, val_interval=2000)
default_hooks = dict(checkpoint=dict(interval=2000))
