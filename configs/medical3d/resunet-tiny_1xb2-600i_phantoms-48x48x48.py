# Residual U-Net (STU-Net style, CPU-tiny preset: 4 stages 8-16-32-64) on the built-in MR
# phantoms (2 channels, organ + lesion), 48^3 patches at 2 mm, Dice + CE with deep supervision.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/phantoms_48x48x48.py',
          '../_base_/schedules/medical_cpu_600i.py', '../_base_/models/unet3d-tiny_phantoms.py']
model = dict(backbone=dict(type='ResUNetEncoder', in_channels=2, arch='tiny'))
