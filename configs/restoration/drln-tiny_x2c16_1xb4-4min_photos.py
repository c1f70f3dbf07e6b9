# DRLN (cascaded dense residual Laplacian modules) x2 on the built-in photos, sized for a 2-core
# CPU and a 4-minute budget. Scaled from the paper's 64 channels and 6 groups of 3,3,3,3,4,4
# DRLMs (34.4M parameters) to 16 channels and 2 groups of 2 DRLMs (0.40M), attention reduction
# 16 -> 4 (so the squeezed branches keep 4 channels): one DRLM costs about 21 EDSR residual
# blocks, so the paper size would take a few iterations in the budget. Two groups of two keep
# the dense cascade, the medium and long skips and the released code's wiring (second DRLM of
# the second group fed the group input). Like the EDSR CPU config, the head adds the bicubic
# upsampled input (output conv starts at zero: the untrained model is bicubic).
_base_ = ['../_base_/models/sr-restorer_x2.py', '../_base_/datasets/photos_sr_x2.py',
          '../_base_/schedules/restoration_cpu.py']
scale = 2
model = dict(
    data_preprocessor=dict(mean=(0.4488, 0.4371, 0.4040), std=(1.0, 1.0, 1.0)),  # DIV2K mean
    backbone=dict(type='densekit.DRLNBody', channels=16, groups=(2, 2), reduction=4),
    head=dict(type='densekit.PixelShuffleHead', in_channels='auto', scale=scale, act=True,
              input_skip='bicubic'))
