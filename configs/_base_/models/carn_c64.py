# CARN body: 64 channels, 3 cascading blocks of 3 residual units; activated upsampler.
_base_ = ['./sr-restorer_pixelshuffle-c64.py']
model = dict(
    backbone=dict(type='densekit.CARNBody', channels=64, num_blocks=3, num_units=3),
    head=dict(act=True))
