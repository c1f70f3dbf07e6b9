# 300k iterations with AdamW 3e-4 (weight decay 1e-4), gradient clipping at 0.01 and a cosine
# decay to 1e-6 (the deraining transformers' schedule, e.g. DRSformer).
max_iters = 300000
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=3e-4, betas=(0.9, 0.999), weight_decay=1e-4),
                     clip_grad=dict(max_norm=0.01))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False, begin=0,
                        end=300000, eta_min=1e-6)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=3,
                    save_last=True, save_best='psnr_y', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='densekit.RestorationVisualizationHook'))
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
