# The tiny residual U-Net with densekit's 3D ASPP on the bottleneck (6^3 at 48^3 patches):
# rates 1, 2, 3, instance norm, no image pooling (instance norm needs more than one voxel).
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/phantoms_48x48x48.py',
          '../_base_/schedules/medical_cpu_600i.py', '../_base_/models/unet3d-tiny_phantoms.py']
model = dict(
    backbone=dict(type='ResUNetEncoder', in_channels=2, arch='tiny'),
    neck=dict(type='densekit.ASPP', in_channels='auto', channels=64,
              dilations=(1, 2, 3), in_index=-1, image_pool=False,
              norm_cfg=dict(type='IN', affine=True),
              act_cfg=dict(type='LeakyReLU', negative_slope=0.01), spatial_dims=3))
