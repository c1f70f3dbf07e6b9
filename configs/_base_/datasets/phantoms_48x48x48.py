# Built-in MR phantoms (2 channels, organ + lesion) resampled to 2 mm, 48^3 training patches.
data_root = 'data/phantoms'
target_spacing = (2.0, 2.0, 2.0)  # (z, y, x) mm
patch_size = (48, 48, 48)
# used by `densekit infer` (channel names come from the checkpoint's dataset meta)
preprocessing = dict(target_spacing=target_spacing)
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
