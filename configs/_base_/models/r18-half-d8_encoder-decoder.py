# mmseg EncoderDecoder on a dilated half-width ResNet-18 (output stride 8, levels at strides
# 4/8/8/8 with 32/64/128/256 channels), CPU-sized for the built-in 128x128 shapes; the
# *_r18-half-d8_1xb8-800i_shapes-128x128.py leaves add their decode head.
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
    backbone=dict(type='mmseg.ResNetV1c', depth=18, stem_channels=32, base_channels=32,
                  num_stages=4, out_indices=(0, 1, 2, 3), norm_cfg=norm_cfg, norm_eval=False,
                  style='pytorch', contract_dilation=True,
                  strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
