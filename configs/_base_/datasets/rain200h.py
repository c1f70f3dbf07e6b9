# Rain200H (heavy synthetic rain) as prepared for Restormer/DRSformer: rainy inputs and clean
# targets with the same file names. Expected layout:
#   data/Rain200H/train/input/*.png   data/Rain200H/train/target/*.png
#   data/Rain200H/test/input/*.png    data/Rain200H/test/target/*.png
dataset_type = 'densekit.PairedImageDataset'
train_pipeline = [
    dict(type='densekit.LoadPairImages', keys=('lq', 'gt')),
    dict(type='densekit.PairedRandomCrop', gt_patch_size=128),
    dict(type='densekit.PairedFlip'),
    dict(type='densekit.PairedRandomRot90'),
    dict(type='densekit.PackRestorationInputs'),
]
test_pipeline = [
    dict(type='densekit.LoadPairImages', keys=('lq', 'gt')),
    dict(type='densekit.PackRestorationInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=8, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root='data/Rain200H',
                 data_prefix=dict(gt='train/target', lq='train/input'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root='data/Rain200H',
                 data_prefix=dict(gt='test/target', lq='test/input'), pipeline=test_pipeline))
test_dataloader = val_dataloader
# Deraining papers report PSNR/SSIM on the Y channel.
val_evaluator = [dict(type='densekit.PSNR', convert_to='y'),
                 dict(type='densekit.SSIM', convert_to='y')]
test_evaluator = val_evaluator
