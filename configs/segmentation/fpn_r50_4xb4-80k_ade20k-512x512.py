# Semantic FPN R50 with densekit.FPN + densekit.FPNHead on ADE20K (150 classes), 80k.
_base_ = ['../_base_/models/fpn_ade20k-512x512.py', '../_base_/default_runtime.py',
          '../_base_/datasets/ade20k_512x512.py', '../_base_/schedules/schedule_80k.py']
model = dict(
    backbone=dict(type='mmseg.ResNetV1c', depth=50, num_stages=4, out_indices=(0, 1, 2, 3),
                  dilations=(1, 1, 1, 1), strides=(1, 2, 2, 2), norm_cfg={{_base_.norm_cfg}},
                  norm_eval=False, style='pytorch', contract_dilation=True,
                  init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet50_v1c')),
    neck=dict(in_channels=[256, 512, 1024, 2048]))
