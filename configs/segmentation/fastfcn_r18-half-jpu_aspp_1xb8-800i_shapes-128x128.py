# FastFCN: plain half-width ResNet-18 (output stride 32) + densekit.JPU (joint pyramid
# upsampling to stride 8) + densekit.ASPPHead, CPU-sized. JPU returns (C3, C4, JPU out); the
# head reads index 2 (4 x mid channels).
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/shapes_seg.py',
          '../_base_/schedules/cpu_iters.py', '../_base_/models/fastfcn_jpu_aspp_shapes-128x128.py']
model = dict(
    backbone=dict(type='mmseg.ResNetV1c', depth=18, stem_channels=32, base_channels=32,
                  num_stages=4, out_indices=(1, 2, 3), norm_cfg={{_base_.norm_cfg}},
                  norm_eval=False, style='pytorch', contract_dilation=True))
