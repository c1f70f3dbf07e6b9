# FSRCNN (d=56, s=12, m=4) x4 on DIV2K luma, Set5 validation.
_base_ = ['./edsr_baseline_x4_div2k.py']
model = dict(
    _delete_=True, type='densekit.Restorer', scale=4, luma_only=True,
    data_preprocessor=dict(type='densekit.RestorationPreprocessor'),
    backbone=dict(type='densekit.FSRCNNBody', in_channels=1, d=56, s=12, m=4),
    head=dict(type='densekit.DeconvHead', in_channels=56, scale=4, out_channels=1),
    pixel_loss=dict(type='densekit.PixelL1Loss'))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
