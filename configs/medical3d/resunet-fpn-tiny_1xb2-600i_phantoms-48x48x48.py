# The tiny residual U-Net with densekit's 3D FPN between encoder and decoder: every level is
# mapped to 16 channels (lateral 1x1 convs + top-down nearest upsampling) before decoding.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/phantoms_48x48x48.py',
          '../_base_/schedules/medical_cpu_600i.py', '../_base_/models/unet3d-tiny_phantoms.py']
model = dict(
    backbone=dict(type='ResUNetEncoder', in_channels=2, arch='tiny'),
    neck=dict(type='densekit.FPN', in_channels='auto', out_channels=16, num_outs=4,
              spatial_dims=3),
    decode_head=dict(in_channels='auto'))
