# DIV2K x3 (MATLAB-bicubic LR, patch 144 = 48 LR pixels) for training, Set5 x3 for validation:
# div2k_sr_x2.py with the x3 prefixes, patch and crop_border.
_base_ = ['./div2k_sr_x2.py']
train_dataloader = dict(dataset=dict(
    scale=3, lq_template='{}x3', data_prefix=dict(lq='DIV2K_train_LR_bicubic/X3'),
    pipeline=[
        dict(type='densekit.LoadPairImages', keys=('lq', 'gt')),
        dict(type='densekit.PairedRandomCrop', gt_patch_size=144),
        dict(type='densekit.PairedFlip'),
        dict(type='densekit.PairedRandomRot90'),
        dict(type='densekit.PackRestorationInputs'),
    ]))
val_dataloader = dict(dataset=dict(scale=3, data_prefix=dict(lq='LRbicx3')))
test_dataloader = val_dataloader
val_evaluator = [dict(type='densekit.PSNR', crop_border=3, convert_to='y'),
                 dict(type='densekit.SSIM', crop_border=3, convert_to='y')]
test_evaluator = val_evaluator
