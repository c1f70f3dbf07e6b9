# Super-resolution Restorer for x2 with an L1 loss and tiled inference: the shell of the x2
# photos leaves, which add the `backbone`, the `head` and any data_preprocessor statistics
# (default: none, i.e. mean 0 and std 1).
task = 'sr'
scale = 2
model = dict(
    type='densekit.Restorer', scale=scale,
    data_preprocessor=dict(type='densekit.RestorationPreprocessor'),
    pixel_loss=dict(type='densekit.PixelL1Loss'))
infer_cfg = dict(tile=512, overlap=16)
