# DeepLabV3+: dilated half-width ResNet-18 + densekit.DepthwiseSeparableASPPHead with the
# stride-4 low-level skip, CPU-sized.
_base_ = ['../_base_/models/r18-half-d8_encoder-decoder.py', '../_base_/default_runtime.py',
          '../_base_/datasets/shapes_seg.py', '../_base_/schedules/cpu_iters.py']
model = dict(
    decode_head=dict(type='densekit.DepthwiseSeparableASPPHead', in_channels='auto', in_index=3,
                     channels=64, c1_in_channels=32, c1_channels=16, dilations=(1, 3, 6, 9),
                     dropout_ratio=0.1, num_classes=7, norm_cfg={{_base_.norm_cfg}},
                     align_corners=False, loss_decode={{_base_.loss_decode}}))
