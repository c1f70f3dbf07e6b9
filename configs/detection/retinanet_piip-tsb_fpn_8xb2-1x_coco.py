# PIIP-TSB detector: ViT-T at 1024, ViT-S at 768, ViT-B at 512 (patch 16) + densekit.FPN +
# RetinaNet head, COCO 1x. Set each branch's init_cfg to load pretrained ViT weights.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/coco_detection.py',
          '../_base_/schedules/schedule_1x_adamw.py']
task = 'det'
data_preprocessor = dict(type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32)
resnet50 = dict(type='mmdet.ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3),
                frozen_stages=1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True,
                style='pytorch',
                init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50'))
visualizer = dict(type='mmdet.DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])

def vit(embed_dims, num_heads, img_size, drop_path):
    return dict(type='mmseg.VisionTransformer', img_size=img_size, patch_size=16,
                embed_dims=embed_dims, num_layers=12, num_heads=num_heads, mlp_ratio=4,
                out_indices=11, with_cls_token=True, final_norm=True, drop_path_rate=drop_path,
                interpolate_mode='bicubic')


model = dict(
    type='mmdet.RetinaNet',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='densekit.PIIP',
                  branches=[vit(768, 12, 512, 0.4), vit(384, 6, 768, 0.15),
                            vit(192, 3, 1024, 0.05)],
                  resolutions=[512, 768, 1024], num_interactions=12,
                  interaction_cfg=dict(num_heads=16, num_points=4, value_ratio=0.5,
                                       ffn_ratio=0.25, drop_path_rate=0.1),
                  out_channels=768),
    neck=dict(type='densekit.FPN', in_channels=[768, 768, 768, 768], out_channels=256,
              start_level=1, add_extra_convs='on_input', num_outs=5),
    bbox_head=dict(
        type='mmdet.RetinaHead', num_classes=80, in_channels=256, stacked_convs=4,
        feat_channels=256,
        anchor_generator=dict(type='mmdet.AnchorGenerator', octave_base_scale=4,
                              scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                              strides=[8, 16, 32, 64, 128]),
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
log_processor = dict(by_epoch=True)
