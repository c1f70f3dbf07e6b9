# Residual U-Net (48/96/192 channels, 2 blocks per level) on Rain200H.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/rain200h.py',
          '../_base_/schedules/restoration_adamw-cosine_300k.py', '../_base_/models/derain_restorer.py']
model = dict(backbone=dict(type='densekit.ResUNet', channels=(48, 96, 192),
                           blocks=2),
             head=dict(in_channels=48))
optim_wrapper = dict(clip_grad=None)
