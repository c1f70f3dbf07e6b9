# DUC + HDC ("Understanding Convolution for Semantic Segmentation"): densekit.ResNetHDC with
# hybrid dilation cycles in the dilated stages and densekit.DUCHead's dense upsampling.
_base_ = ['../_base_/models/r18-half-d8_encoder-decoder.py', '../_base_/default_runtime.py',
          '../_base_/datasets/shapes_seg.py', '../_base_/schedules/cpu_iters.py']
model = dict(
    backbone=dict(type='densekit.ResNetHDC', hdc_dilations=(None, None, (1, 2), (2, 5))),
    decode_head=dict(type='densekit.DUCHead', upsample_factor=8, num_convs=1, in_channels='auto',
                     in_index=3, channels=64, dropout_ratio=0.0, num_classes=7,
                     norm_cfg={{_base_.norm_cfg}}, align_corners=False,
                     loss_decode={{_base_.loss_decode}}))
