# Fast CNN deraining baseline: residual U-Net (16/32/64 channels) on the built-in photos with
# synthetic Rain100L-style rain; trains for 4 minutes on a 2-core CPU.
_base_ = ['../_base_/datasets/photos_rain.py',
          '../_base_/schedules/restoration_cpu.py']
task = 'derain'
model = dict(
    type='densekit.Restorer', scale=1,
    data_preprocessor=dict(type='densekit.RestorationPreprocessor'),
    backbone=dict(type='densekit.ResUNet', channels=(16, 32, 64), blocks=1),
    head=dict(type='densekit.ReconstructionHead', in_channels='auto'),
    pixel_loss=dict(type='densekit.PixelL1Loss'))
infer_cfg = dict(tile=512, overlap=16)
