# CARN-M (group convs, shared units) at 32 channels, x2, on the built-in photos (CPU).
_base_ = ['../_base_/datasets/photos_sr_x2.py',
          '../_base_/schedules/restoration_cpu.py']
task = 'sr'
scale = 2
model = dict(
    type='densekit.Restorer', scale=scale,
    data_preprocessor=dict(type='densekit.RestorationPreprocessor',
                           mean=(0.4488, 0.4371, 0.4040), std=(1.0, 1.0, 1.0)),
    backbone=dict(type='densekit.CARNBody', channels=32, num_blocks=3, num_units=3, groups=4,
                  share_units=True),
    head=dict(type='densekit.PixelShuffleHead', in_channels='auto', scale=scale, act=True, groups=4,
              input_skip='bicubic'),  # global residual: starts at bicubic, learns faster
    pixel_loss=dict(type='densekit.PixelL1Loss'))
infer_cfg = dict(tile=512, overlap=16)
