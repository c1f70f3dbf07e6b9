# Deraining Restorer (scale 1, no mean shift) with a reconstruction head and an L1 loss; tiled
# inference with 32-pixel overlap. Leaves add the `backbone` and set head.in_channels to its
# output width.
task = 'derain'
model = dict(
    type='densekit.Restorer', scale=1,
    data_preprocessor=dict(type='densekit.RestorationPreprocessor'),
    head=dict(type='densekit.ReconstructionHead', in_channels=96),
    pixel_loss=dict(type='densekit.PixelL1Loss'))
infer_cfg = dict(tile=512, overlap=32)
