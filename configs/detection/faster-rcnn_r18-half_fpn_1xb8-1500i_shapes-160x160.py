# Faster R-CNN with a half-width ResNet-18 (mmdet ResNet) and densekit.FPN, CPU-sized.
_base_ = ['../_base_/models/faster-rcnn_fpn.py', '../_base_/default_runtime.py',
          '../_base_/datasets/shapes_coco.py', '../_base_/schedules/det_cpu_iters.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(type='mmdet.DetDataPreprocessor', mean=[127.5, 127.5, 127.5],
                           std=[64.0, 64.0, 64.0], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='mmdet.ResNet', depth=18, base_channels=32, num_stages=4,
                  out_indices=(0, 1, 2, 3), frozen_stages=-1, norm_cfg=norm_cfg, norm_eval=False,
                  style='pytorch'),
    neck=dict(type='densekit.FPN', in_channels='auto', out_channels=64, num_outs=5),
    rpn_head=dict(in_channels='auto', feat_channels=64),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=64),
                  bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=6)),
    train_cfg=dict(rpn=dict(sampler=dict(num=128)),
                   rpn_proposal=dict(nms_pre=1000, max_per_img=500),
                   rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))
