# Semantic FPN R50 with densekit.FPN + densekit.FPNHead on ADE20K (150 classes), 80k.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/ade20k_512x512.py',
          '../_base_/schedules/schedule_80k.py']
task = 'seg'
crop_size = (512, 512)
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(type='mmseg.SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
                         size=crop_size)
loss_decode = dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
visualizer = dict(type='mmseg.SegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
model = dict(
    type='mmseg.EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='mmseg.ResNetV1c', depth=50, num_stages=4, out_indices=(0, 1, 2, 3),
                  dilations=(1, 1, 1, 1), strides=(1, 2, 2, 2), norm_cfg=norm_cfg,
                  norm_eval=False, style='pytorch', contract_dilation=True,
                  init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet50_v1c')),
    neck=dict(type='densekit.FPN', in_channels=[256, 512, 1024, 2048], out_channels=256,
              num_outs=4),
    decode_head=dict(type='densekit.FPNHead', in_channels=[256, 256, 256, 256],
                     in_index=[0, 1, 2, 3], feature_strides=[4, 8, 16, 32], channels=128,
                     dropout_ratio=0.1, num_classes=150, norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=loss_decode),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
