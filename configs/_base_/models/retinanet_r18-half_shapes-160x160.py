# The shapes RetinaNet with a half-width ResNet-18 (mmdet ResNet, stride-8/16/32 levels with
# 64/128/256 channels). Leaves add the `neck`.
_base_ = ['./retinanet_shapes-160x160.py']
model = dict(
    backbone=dict(type='mmdet.ResNet', depth=18, base_channels=32, num_stages=4,
                  out_indices=(1, 2, 3), frozen_stages=-1, norm_cfg={{_base_.norm_cfg}},
                  norm_eval=False, style='pytorch'))
