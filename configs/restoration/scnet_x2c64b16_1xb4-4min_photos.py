# SCNet (fully 1x1 convs + Shift8; 16 blocks, 64 channels) x2 on the built-in photos (CPU).
_base_ = ['../_base_/models/sr-restorer_x2.py', '../_base_/datasets/photos_sr_x2.py',
          '../_base_/schedules/restoration_cpu.py']
scale = 2
model = dict(
    backbone=dict(type='densekit.SCNetBody', channels=64, num_blocks=16),
    head=dict(type='densekit.ShiftUpsampleHead', in_channels='auto', scale=scale))
