# Built-in photos for multi-scale SR (x2, x3 and x4 at once): every pair is made from the same
# target at each scale by MATLAB bicubic (MultiScalePairedDataset + BicubicDegrade), and
# MixedScaleBatchSampler gives each batch one scale (equal weights, shuffled). Validation
# reports psnr_y_x2 / psnr_y_x3 / psnr_y_x4 (crop_border = scale). Generate the photos as
# described in photos_sr_x2.py.
dataset_type = 'densekit.PairedImageDataset'
data_root = 'data/restoration/photos'
train_pipeline = [
    dict(type='densekit.LoadPairImages', keys=('gt',), cache=True),
    dict(type='densekit.BicubicDegrade', cache=True),  # whole image, at the pair's scale
    dict(type='densekit.PairedRandomCrop', lq_patch_size=24),  # same body cost at every scale
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
    batch_sampler=dict(type='densekit.MixedScaleBatchSampler', scale_weights=(1, 1, 1)),
    dataset=dict(type='densekit.MultiScalePairedDataset', scales=(2, 3, 4),
                 data_root=data_root, data_prefix=dict(gt='train/GT'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='densekit.MultiScalePairedDataset', scales=(2, 3, 4), data_root=data_root,
                 data_prefix=dict(gt='val/GT', lq='val/LRx{scale}'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='densekit.PSNR', crop_border='scale', convert_to='y', per_scale=True),
    dict(type='densekit.SSIM', crop_border='scale', convert_to='y', per_scale=True),
]
test_evaluator = val_evaluator
