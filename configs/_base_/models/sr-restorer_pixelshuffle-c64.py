# Super-resolution Restorer (x2 unless a leaf sets `scale` and model.scale/head.scale) with the
# DIV2K mean, a pixel-shuffle upsampler on 64 channels and an L1 loss; tiled inference.
# Leaves (or the edsr/carn parts) add the `backbone`.
task = 'sr'
scale = 2
model = dict(
    type='densekit.Restorer', scale=scale,
    data_preprocessor=dict(type='densekit.RestorationPreprocessor',
                           mean=(0.4488, 0.4371, 0.4040), std=(1.0, 1.0, 1.0)),  # DIV2K mean
    head=dict(type='densekit.PixelShuffleHead', in_channels=64, scale=scale),
    pixel_loss=dict(type='densekit.PixelL1Loss'))
infer_cfg = dict(tile=512, overlap=16)
