# FCOS R50 + densekit.FPN (extra levels on the output, ReLU before them) with a GN head, COCO 1x.
_base_ = ['../_base_/models/fcos_fpn.py', '../_base_/models/resnet50_coco-det.py',
          '../_base_/default_runtime.py', '../_base_/datasets/coco_detection.py',
          '../_base_/schedules/schedule_1x.py']
model = dict(
    data_preprocessor={{_base_.data_preprocessor}},
    backbone={{_base_.resnet50}},
    neck=dict(in_channels=[256, 512, 1024, 2048], out_channels=256, start_level=1, num_outs=5),
    bbox_head=dict(num_classes=80, in_channels=256, stacked_convs=4, feat_channels=256,
                   strides=[8, 16, 32, 64, 128], norm_cfg=dict(num_groups=32),
                   loss_bbox=dict(type='mmdet.IoULoss', loss_weight=1.0)))
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001),
                     paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=0.0),
                     clip_grad=dict(max_norm=35, norm_type=2))
log_processor = dict(by_epoch=True)
