# SCNet (16 blocks, 64 channels) x4 on DIV2K, Set5 validation.
_base_ = ['./edsr_baseline_x4_div2k.py']
model = dict(
    _delete_=True, type='densekit.Restorer', scale=4,
    data_preprocessor=dict(type='densekit.RestorationPreprocessor'),
    backbone=dict(type='densekit.SCNetBody', channels=64, num_blocks=16),
    head=dict(type='densekit.ShiftUpsampleHead', in_channels=64, scale=4),
    pixel_loss=dict(type='densekit.PixelL1Loss'))
optim_wrapper = dict(optimizer=dict(lr=5e-4))
