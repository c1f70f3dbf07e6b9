# DeepLabV3: dilated half-width ResNet-18 (output stride 8) + densekit.ASPPHead, CPU-sized.
# Rates are scaled to the 16x16 stride-8 maps of a 128x128 input.
_base_ = ['../_base_/models/r18-half-d8_encoder-decoder.py', '../_base_/default_runtime.py',
          '../_base_/datasets/shapes_seg.py', '../_base_/schedules/cpu_iters.py']
model = dict(
    decode_head=dict(type='densekit.ASPPHead', in_channels='auto', in_index=3, channels=64,
                     dilations=(1, 3, 6, 9), dropout_ratio=0.1, num_classes=7,
                     norm_cfg={{_base_.norm_cfg}}, align_corners=False,
                     loss_decode={{_base_.loss_decode}}))
