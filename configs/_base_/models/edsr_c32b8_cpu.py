# EDSR-baseline architecture at CPU size (8 blocks, 32 channels) for x2, with a bicubic global
# residual in the head.
task = 'sr'
scale = 2
model = dict(
    type='densekit.Restorer', scale=scale,
    data_preprocessor=dict(type='densekit.RestorationPreprocessor',
                           mean=(0.4488, 0.4371, 0.4040), std=(1.0, 1.0, 1.0)),  # DIV2K mean
    backbone=dict(type='densekit.EDSRBody', channels=32, num_blocks=8, res_scale=1.0),
    head=dict(type='densekit.PixelShuffleHead', in_channels='auto', scale=scale,
              input_skip='bicubic'),  # global residual: starts at bicubic, learns faster
    pixel_loss=dict(type='densekit.PixelL1Loss'))
infer_cfg = dict(tile=512, overlap=16)
