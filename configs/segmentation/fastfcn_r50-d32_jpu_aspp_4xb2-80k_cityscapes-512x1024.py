# FastFCN: plain ResNet-50 (output stride 32) + densekit.JPU + densekit.ASPPHead, mmseg's
# Cityscapes 80k setting (mmseg reference: 79.12 mIoU). 4 GPUs x 2 images.
_base_ = ['../_base_/models/r50-v1c_aspp_cityscapes-512x1024.py', '../_base_/default_runtime.py',
          '../_base_/datasets/cityscapes_512x1024.py', '../_base_/schedules/schedule_80k.py']
model = dict(
    backbone=dict(out_indices=(1, 2, 3), dilations=(1, 1, 1, 1), strides=(1, 2, 2, 2)),
    neck=dict(type='densekit.JPU', in_channels=(512, 1024, 2048), mid_channels=512,
              start_level=0, end_level=-1, dilations=(1, 2, 4, 8), align_corners=False,
              norm_cfg={{_base_.norm_cfg}}),
    decode_head=dict(in_index=2),
    auxiliary_head=dict(in_index=1))
