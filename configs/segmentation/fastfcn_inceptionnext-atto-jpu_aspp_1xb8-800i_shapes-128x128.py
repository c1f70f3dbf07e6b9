# FastFCN on InceptionNeXt-atto: the half-width ResNet-18 FastFCN with the backbone swapped.
# InceptionNeXt's stride-8/16/32 levels (80/160/320 channels) go through densekit.JPU (joint
# pyramid upsampling to stride 8) and densekit.ASPPHead, CPU-sized, trained from scratch on the
# built-in shapes.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/shapes_seg.py',
          '../_base_/schedules/cpu_iters.py', '../_base_/models/fastfcn_jpu_aspp_shapes-128x128.py']
model = dict(
    backbone=dict(type='densekit.InceptionNeXt', arch='atto', out_indices=(1, 2, 3),
                  drop_path_rate=0.0),
    neck=dict(in_channels=(80, 160, 320)))
