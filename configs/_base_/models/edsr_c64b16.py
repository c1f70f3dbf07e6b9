# EDSR baseline body: 16 residual blocks, 64 channels, res_scale 1.
_base_ = ['./sr-restorer_pixelshuffle-c64.py']
model = dict(backbone=dict(type='densekit.EDSRBody', channels=64, num_blocks=16, res_scale=1.0))
