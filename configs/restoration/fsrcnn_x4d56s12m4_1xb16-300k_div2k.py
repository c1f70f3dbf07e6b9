# FSRCNN (d=56, s=12, m=4) x4 on DIV2K luma, Set5 validation.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/div2k_sr_x4.py',
          '../_base_/schedules/restoration_gpu_300k.py']
task = 'sr'
scale = 4
model = dict(
    type='densekit.Restorer', scale=4, luma_only=True,
    data_preprocessor=dict(type='densekit.RestorationPreprocessor'),
    backbone=dict(type='densekit.FSRCNNBody', in_channels=1, d=56, s=12, m=4),
    head=dict(type='densekit.DeconvHead', in_channels=56, scale=4, out_channels=1),
    pixel_loss=dict(type='densekit.PixelL1Loss'))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
infer_cfg = dict(tile=512, overlap=16)
