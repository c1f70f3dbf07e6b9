# DIV2K x4 (MATLAB-bicubic LR, patch 192 = 48 LR pixels) for training, Set5 x4 for validation:
# div2k_sr_x2.py with the x4 prefixes, patch and crop_border.
_base_ = ['./div2k_sr_x2.py']
train_dataloader = dict(dataset=dict(
    scale=4, lq_template='{}x4', data_prefix=dict(lq='DIV2K_train_LR_bicubic/X4'),
    pipeline=[
        dict(type='densekit.LoadPairImages', keys=('lq', 'gt')),
        dict(type='densekit.PairedRandomCrop', gt_patch_size=192),
        dict(type='densekit.PairedFlip'),
        dict(type='densekit.PairedRandomRot90'),
        dict(type='densekit.PackRestorationInputs'),
    ]))
val_dataloader = dict(dataset=dict(scale=4, data_prefix=dict(lq='LRbicx4')))
test_dataloader = val_dataloader
val_evaluator = [dict(type='densekit.PSNR', crop_border=4, convert_to='y'),
                 dict(type='densekit.SSIM', crop_border=4, convert_to='y')]
test_evaluator = val_evaluator
