# Built-in photos with synthetic rain (densekit.tasks.restoration.rain): training adds fresh random
# Rain100L-style streaks to every crop; validation uses the fixed, seeded rainy copies of the
# held-out photos. Generate them as described in photos_sr_x2.py.
dataset_type = 'densekit.PairedImageDataset'
data_root = 'data/restoration/photos'
train_pipeline = [
    dict(type='densekit.LoadPairImages', keys=('gt',), cache=True),
    dict(type='densekit.PairedRandomCrop', gt_patch_size=64),
    dict(type='densekit.AddRainStreaks', preset='light', density=(0.001, 0.003),
         intensity=(0.4, 0.8)),
    dict(type='densekit.PairedFlip', vertical=0.0),
    dict(type='densekit.PackRestorationInputs'),
]
test_pipeline = [
    dict(type='densekit.LoadPairImages', keys=('lq', 'gt'), cache=True),
    dict(type='densekit.PackRestorationInputs'),
]
train_dataloader = dict(  # small batches: more updates fit a CPU time budget
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix=dict(gt='train/GT'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(gt='val/GT', lq='val/rain_light'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='densekit.PSNR'),
    dict(type='densekit.SSIM'),
    dict(type='densekit.PSNR', convert_to='y'),
]
test_evaluator = val_evaluator
