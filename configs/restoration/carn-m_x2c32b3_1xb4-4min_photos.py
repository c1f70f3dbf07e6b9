# CARN-M (group convs, shared units) at 32 channels, x2, on the built-in photos (CPU).
_base_ = ['../_base_/models/sr-restorer_x2.py', '../_base_/datasets/photos_sr_x2.py',
          '../_base_/schedules/restoration_cpu.py']
scale = 2
model = dict(
    data_preprocessor=dict(mean=(0.4488, 0.4371, 0.4040), std=(1.0, 1.0, 1.0)),
    backbone=dict(type='densekit.CARNBody', channels=32, num_blocks=3, num_units=3, groups=4,
                  share_units=True),
    head=dict(type='densekit.PixelShuffleHead', in_channels='auto', scale=scale, act=True, groups=4,
              input_skip='bicubic'))  # global residual: starts at bicubic, learns faster
