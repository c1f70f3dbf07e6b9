# Built-in photos (densekit.tasks.restoration.photos): MATLAB-bicubic x2 pairs, held-out val.
# Generate with `python -c "from densekit.tasks.restoration import generate_restoration_photos as g;
# g('data/restoration/photos')"` (the demo does it too).
# For x3/x4 override `scale`, the `LRx*` prefixes and the metrics' crop_border in the leaf.
dataset_type = 'densekit.PairedImageDataset'
data_root = 'data/restoration/photos'
train_pipeline = [
    dict(type='densekit.LoadPairImages', keys=('lq', 'gt'), cache=True),
    dict(type='densekit.PairedRandomCrop', gt_patch_size=48),
    dict(type='densekit.PairedFlip'),
    dict(type='densekit.PairedRandomRot90'),
    dict(type='densekit.PackRestorationInputs'),
]
test_pipeline = [
    dict(type='densekit.LoadPairImages', keys=('lq', 'gt'), cache=True),
    dict(type='densekit.PackRestorationInputs'),
]
train_dataloader = dict(  # small batches: more updates fit a CPU time budget
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, scale=2,
                 data_prefix=dict(gt='train/GT', lq='train/LRx2'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, scale=2,
                 data_prefix=dict(gt='val/GT', lq='val/LRx2'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='densekit.PSNR', crop_border=2, convert_to='y'),
    dict(type='densekit.SSIM', crop_border=2, convert_to='y'),
    dict(type='densekit.PSNR', crop_border=2),
]
test_evaluator = val_evaluator
