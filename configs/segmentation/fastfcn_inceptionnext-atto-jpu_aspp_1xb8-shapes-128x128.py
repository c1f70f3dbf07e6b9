# FastFCN on InceptionNeXt-atto: the half-width ResNet-18 FastFCN with the backbone swapped.
# InceptionNeXt's stride-8/16/32 levels (80/160/320 channels) go through densekit.JPU (joint
# pyramid upsampling to stride 8) and densekit.ASPPHead, CPU-sized, trained from scratch on the
# built-in shapes.
_base_ = ['./fastfcn_r18-half-jpu_aspp_1xb8-shapes-128x128.py']
model = dict(
    backbone=dict(_delete_=True, type='densekit.InceptionNeXt', arch='atto', out_indices=(1, 2, 3),
                  drop_path_rate=0.0),
    neck=dict(in_channels=(80, 160, 320)))
