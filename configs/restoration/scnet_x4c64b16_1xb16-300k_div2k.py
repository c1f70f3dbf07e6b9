# SCNet (16 blocks, 64 channels) x4 on DIV2K, Set5 validation.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/div2k_sr_x4.py',
          '../_base_/schedules/restoration_gpu_300k.py']
task = 'sr'
scale = 4
model = dict(
    type='densekit.Restorer', scale=4,
    data_preprocessor=dict(type='densekit.RestorationPreprocessor'),
    backbone=dict(type='densekit.SCNetBody', channels=64, num_blocks=16),
    head=dict(type='densekit.ShiftUpsampleHead', in_channels=64, scale=4),
    pixel_loss=dict(type='densekit.PixelL1Loss'))
optim_wrapper = dict(optimizer=dict(lr=5e-4))
infer_cfg = dict(tile=512, overlap=16)
