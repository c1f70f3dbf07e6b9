# Time-budgeted restoration schedule for a 2-core CPU: Adam; the learning rate warms up and then
# follows a cosine over `time_budget_s` of wall-clock time (densekit.TimeCosineLRHook), and
# densekit.TimeBudgetHook stops training when the budget is spent, leaving a final checkpoint.
# How many iterations fit depends on the machine; max_iters is only an upper bound.
# Includes the default runtime (leaf configs list this file instead of default_runtime.py).
_base_ = ['../default_runtime.py']
time_budget_s = 240
max_iters = 100000
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=2e-3, betas=(0.9, 0.99)))
param_scheduler = []
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
custom_hooks = [
    dict(type='densekit.ProgressBarHook'),
    dict(type='densekit.CpuThreadsHook', threads='auto'),  # only the idle cores (CPU runs)
    dict(type='densekit.TimeCosineLRHook', budget_s=time_budget_s, warmup_iters=20),
    dict(type='densekit.TimeBudgetHook', budget_s=time_budget_s),
]
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1,
                    save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='densekit.RestorationVisualizationHook'))
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
