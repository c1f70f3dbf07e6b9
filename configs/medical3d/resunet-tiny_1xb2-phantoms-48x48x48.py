# Residual U-Net (STU-Net style, CPU-tiny preset: 4 stages 8-16-32-64) on the built-in MR
# phantoms (2 channels, organ + lesion), 48^3 patches at 2 mm, Dice + CE with deep supervision.
_base_ = ['../_base_/default_runtime.py']
task = 'medical'
data_root = 'data/phantoms'
target_spacing = (2.0, 2.0, 2.0)  # (z, y, x) mm
patch_size = (48, 48, 48)
# used by `densekit infer` (channel names come from the checkpoint's dataset meta)
preprocessing = dict(target_spacing=target_spacing)

model = dict(
    type='MedicalSegmentor',
    backbone=dict(type='ResUNetEncoder', in_channels=2, arch='tiny'),
    decode_head=dict(type='UNetDecoderHead', in_channels='auto', num_classes=3),
    loss=dict(type='DiceCELoss', batch_dice=True),
    test_cfg=dict(roi_size=patch_size, sw_batch_size=1, overlap=0.5, mode='gaussian'))

train_pipeline = [
    dict(type='RandomPatch3D', patch_size=patch_size, fg_fraction=1 / 3),
    dict(type='RandomAffine3D', prob=0.2, degrees=15.0, scale=(0.85, 1.25)),
    dict(type='RandomFlip3D', prob=0.5, axes=(0, 1, 2)),
    dict(type='RandomRotate90', prob=0.5, axes=(1, 2)),
    dict(type='RandomIntensity3D', prob=0.15),
    dict(type='RandomGamma3D', prob=0.3),
    dict(type='PackMedicalInputs'),
]
test_pipeline = [dict(type='PackMedicalInputs')]
dataset = dict(type='MedicalVolumeDataset', data_root=data_root, target_spacing=target_spacing)
train_dataloader = dict(
    batch_size=2, num_workers=1, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(**dataset, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(**dataset, split='val', test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='MedicalSegMetric', hd95=True)
test_evaluator = val_evaluator

optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=3e-3, betas=(0.9, 0.999), weight_decay=1e-4),
                     clip_grad=dict(max_norm=12.0))
max_iters = 600
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=30),
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=30, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=25, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=2,
                    save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'))
# scalars to vis_data/scalars.json and to TensorBoard event files (`tensorboard --logdir`)
visualizer = dict(type='Visualizer',
                  vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
