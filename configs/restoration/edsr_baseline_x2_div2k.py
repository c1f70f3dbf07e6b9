# EDSR baseline (16 blocks, 64 channels, res_scale 1) x2 on DIV2K, Set5 validation, 300k iters.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/div2k_sr_x2.py',
          '../_base_/schedules/restoration_gpu_300k.py']
task = 'sr'
scale = 2
model = dict(
    type='densekit.Restorer', scale=scale,
    data_preprocessor=dict(type='densekit.RestorationPreprocessor',
                           mean=(0.4488, 0.4371, 0.4040), std=(1.0, 1.0, 1.0)),  # DIV2K mean
    backbone=dict(type='densekit.EDSRBody', channels=64, num_blocks=16, res_scale=1.0),
    head=dict(type='densekit.PixelShuffleHead', in_channels=64, scale=scale),
    pixel_loss=dict(type='densekit.PixelL1Loss'))
infer_cfg = dict(tile=512, overlap=16)
