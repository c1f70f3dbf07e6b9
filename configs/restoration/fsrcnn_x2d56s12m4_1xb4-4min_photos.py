# FSRCNN (d=56, s=12, m=4) on the luma channel, x2, on the built-in photos (CPU, 4 minutes).
_base_ = ['../_base_/models/sr-restorer_x2.py', '../_base_/datasets/photos_sr_x2.py',
          '../_base_/schedules/restoration_cpu.py']
scale = 2
model = dict(
    luma_only=True,
    backbone=dict(type='densekit.FSRCNNBody', in_channels=1, d=56, s=12, m=4),
    head=dict(type='densekit.DeconvHead', in_channels='auto', scale=scale, out_channels=1,
              input_skip='bicubic'))  # global residual: starts at bicubic, learns faster
