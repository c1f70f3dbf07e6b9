# DeepLabV3: dilated half-width ResNet-18 (output stride 8) + densekit.ASPPHead, CPU-sized.
# Rates are scaled to the 16x16 stride-8 maps of a 128x128 input.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/shapes_seg.py',
          '../_base_/schedules/cpu_iters.py']
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
    decode_head=dict(type='densekit.ASPPHead', in_channels=256, in_index=3, channels=64,
                     dilations=(1, 3, 6, 9), dropout_ratio=0.1, num_classes=7, norm_cfg=norm_cfg,
                     align_corners=False, loss_decode=loss_decode),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
