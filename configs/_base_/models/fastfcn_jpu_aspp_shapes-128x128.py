# FastFCN for the built-in 128x128 shapes (7 classes), CPU-sized: densekit.JPU (joint pyramid
# upsampling to stride 8, 64 mid channels) + densekit.ASPPHead reading the JPU output (index 2,
# 4 x mid channels). Leaves add a `backbone` with stride-8/16/32 levels and set the JPU's
# `in_channels` to match (ResNet-18 half width: 64/128/256).
task = 'seg'
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(type='mmseg.SegDataPreProcessor', mean=[127.5, 127.5, 127.5],
                         std=[64.0, 64.0, 64.0], bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
                         size=(128, 128))
loss_decode = dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
visualizer = dict(type='mmseg.SegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')], alpha=0.6)
model = dict(
    type='mmseg.EncoderDecoder',
    data_preprocessor=data_preprocessor,
    neck=dict(type='densekit.JPU', in_channels=(64, 128, 256), mid_channels=64, start_level=0,
              end_level=-1, dilations=(1, 2, 4, 8), align_corners=False, norm_cfg=norm_cfg),
    decode_head=dict(type='densekit.ASPPHead', in_channels=256, in_index=2, channels=64,
                     dilations=(1, 3, 6, 9), dropout_ratio=0.1, num_classes=7, norm_cfg=norm_cfg,
                     align_corners=False, loss_decode=loss_decode),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
