# Semantic FPN for the built-in 128x128 shapes (7 classes), CPU-sized: densekit.FPN to 4 levels
# and densekit.FPNHead over them (input channels inferred). Leaves add the `backbone`, the FPN
# and head widths and `loss_decode` (top level and in the head).
task = 'seg'
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(type='mmseg.SegDataPreProcessor', mean=[127.5, 127.5, 127.5],
                         std=[64.0, 64.0, 64.0], bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
                         size=(128, 128))
visualizer = dict(type='mmseg.SegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')], alpha=0.6)
model = dict(
    type='mmseg.EncoderDecoder',
    data_preprocessor=data_preprocessor,
    neck=dict(type='densekit.FPN', in_channels='auto', num_outs=4),
    decode_head=dict(type='densekit.FPNHead', in_channels='auto', in_index=[0, 1, 2, 3],
                     feature_strides=[4, 8, 16, 32], dropout_ratio=0.0, num_classes=7,
                     norm_cfg=norm_cfg, align_corners=False),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
