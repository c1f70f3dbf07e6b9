# FCOS (anchor-free) with a half-width ResNet-18 (mmdet ResNet) and densekit.FPN, CPU-sized.
_base_ = ['../_base_/models/fcos_fpn.py', '../_base_/default_runtime.py',
          '../_base_/datasets/shapes_coco.py', '../_base_/schedules/det_cpu_iters.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(type='mmdet.DetDataPreprocessor', mean=[127.5, 127.5, 127.5],
                           std=[64.0, 64.0, 64.0], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='mmdet.ResNet', depth=18, base_channels=32, num_stages=4,
                  out_indices=(1, 2, 3), frozen_stages=-1, norm_cfg=norm_cfg, norm_eval=False,
                  style='pytorch'),
    neck=dict(in_channels='auto', out_channels=64, start_level=0, num_outs=4),
    bbox_head=dict(
        num_classes=6, in_channels='auto', stacked_convs=2, feat_channels=64,
        strides=[8, 16, 32, 64], regress_ranges=((-1, 48), (48, 96), (96, 192), (192, 1e8)),
        norm_on_bbox=True, centerness_on_reg=True, center_sampling=True, center_sample_radius=1.5,
        norm_cfg=dict(num_groups=16), loss_bbox=dict(type='mmdet.GIoULoss', loss_weight=1.0)))
