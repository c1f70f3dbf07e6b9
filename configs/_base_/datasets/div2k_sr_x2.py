# DIV2K x2 (MATLAB-bicubic LR as distributed) for training, Set5 for validation: the standard
# SR setting. Expected layout (download DIV2K / Set5 yourself):
#   data/DIV2K/DIV2K_train_HR/0001.png   data/DIV2K/DIV2K_train_LR_bicubic/X2/0001x2.png
#   data/Set5/GTmod12/baby.png           data/Set5/LRbicx2/baby.png
# For x3/x4 override scale, the X*/LRbicx* prefixes, lq_template, the patch and crop_border.
dataset_type = 'densekit.PairedImageDataset'
train_pipeline = [
    dict(type='densekit.LoadPairImages', keys=('lq', 'gt')),
    dict(type='densekit.PairedRandomCrop', gt_patch_size=96),
    dict(type='densekit.PairedFlip'),
    dict(type='densekit.PairedRandomRot90'),
    dict(type='densekit.PackRestorationInputs'),
]
test_pipeline = [
    dict(type='densekit.LoadPairImages', keys=('lq', 'gt')),
    dict(type='densekit.PackRestorationInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=8, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root='data/DIV2K', scale=2, lq_template='{}x2',
                 data_prefix=dict(gt='DIV2K_train_HR', lq='DIV2K_train_LR_bicubic/X2'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root='data/Set5', scale=2,
                 data_prefix=dict(gt='GTmod12', lq='LRbicx2'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='densekit.PSNR', crop_border=2, convert_to='y'),
    dict(type='densekit.SSIM', crop_border=2, convert_to='y'),
]
test_evaluator = val_evaluator
