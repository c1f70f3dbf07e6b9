# DRSformer (C=48, blocks 4/6/6/8, heads 1/2/4/8, FFN 2.66, MEFC 4 steps) on Rain200H.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/rain200h.py',
          '../_base_/schedules/restoration_gpu_300k.py']
task = 'derain'
model = dict(
    type='densekit.Restorer', scale=1,
    data_preprocessor=dict(type='densekit.RestorationPreprocessor'),
    backbone=dict(type='densekit.DRSformer', dim=48, num_blocks=(4, 6, 6, 8), heads=(1, 2, 4, 8),
                  ffn_expansion=2.66, mefc=True, mefc_steps=4),
    head=dict(type='densekit.ReconstructionHead', in_channels=96),
    pixel_loss=dict(type='densekit.PixelL1Loss'))
optim_wrapper = dict(type='OptimWrapper', _delete_=True,
                     optimizer=dict(type='AdamW', lr=3e-4, betas=(0.9, 0.999), weight_decay=1e-4),
                     clip_grad=dict(max_norm=0.01))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False, begin=0,
                        end=300000, eta_min=1e-6)]
infer_cfg = dict(tile=512, overlap=32)
