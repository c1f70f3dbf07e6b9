# det_cpu_iters.py sized to the 10-minute CPU budget of the shapes RetinaNets (0.26-0.30
# s/iteration on 2 cores): 2000 iterations with the cosine decay ending with the run.
_base_ = ['./det_cpu_iters.py']
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', eta_min=1e-5, begin=100, end=2000, T_max=1900,
         by_epoch=False),
]
train_cfg = dict(max_iters=2000, val_interval=2000)
default_hooks = dict(checkpoint=dict(interval=2000))
