# RC-LUT (Liu et al., ICCV 2023) on the luma channel, x2, on the built-in photos (CPU, 4 minutes):
# a 5x5 reconstructed-convolution module (25 1D tables) and a MuLUT 2x2 unit (a 4D table),
# 4-rotation ensemble, as the release's S mode; residual over MATLAB bicubic (as FSRCNN's
# config). rc_features=8 instead of the release's 64: with no activation between (rc_act=None,
# as released) each position's 1 -> F -> 1 map is affine whatever F is, so 8 gives the same
# function class in less CPU time. Convert the trained model to tables with
# densekit.tasks.restoration.lut.convert_to_luts.
_base_ = ['../_base_/models/sr-restorer_x2.py', '../_base_/datasets/photos_sr_x2.py',
          '../_base_/schedules/restoration_cpu.py']
scale = 2
model = dict(
    luma_only=True,
    backbone=dict(type='densekit.RCLUTBody', scale=scale, in_channels=1, rc_size=5,
                  rc_features=8, unit_features=64, dense_layers=4, rotations=4),
    head=dict(type='densekit.PixelShuffleSkipHead', scale=scale, input_skip='bicubic'))
