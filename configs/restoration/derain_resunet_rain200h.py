# Residual U-Net (48/96/192 channels, 2 blocks per level) on Rain200H.
_base_ = ['./drsformer_rain200h.py']
model = dict(backbone=dict(_delete_=True, type='densekit.ResUNet', channels=(48, 96, 192),
                           blocks=2),
             head=dict(in_channels=48))
optim_wrapper = dict(clip_grad=None)
