# Semantic FPN for ADE20K (150 classes, 512x512 crops, SyncBN): densekit.FPN to 4 levels of 256
# channels and densekit.FPNHead over them. Leaves add the `backbone` (4 maps at strides
# 4/8/16/32) and the FPN's `in_channels`.
task = 'seg'
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(type='mmseg.SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
                         size=(512, 512))
loss_decode = dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
visualizer = dict(type='mmseg.SegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
model = dict(
    type='mmseg.EncoderDecoder',
    data_preprocessor=data_preprocessor,
    neck=dict(type='densekit.FPN', out_channels=256, num_outs=4),
    decode_head=dict(type='densekit.FPNHead', in_channels=[256, 256, 256, 256],
                     in_index=[0, 1, 2, 3], feature_strides=[4, 8, 16, 32], channels=128,
                     dropout_ratio=0.1, num_classes=150, norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=loss_decode),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
