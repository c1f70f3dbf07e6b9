# DeepLabV3 R50-D8 with densekit.ASPPHead, mmseg's standard Cityscapes 80k setting
# (mmseg reference: 79.32 mIoU). 4 GPUs x 2 images.
_base_ = ['../_base_/models/r50-v1c_aspp_cityscapes-512x1024.py', '../_base_/default_runtime.py',
          '../_base_/datasets/cityscapes_512x1024.py', '../_base_/schedules/schedule_80k.py']
model = dict(
    backbone=dict(out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1)),
    decode_head=dict(in_index=3))
