# EDSR baseline x4 on DIV2K (patch 192 = 48 LR pixels), Set5 validation.
_base_ = ['./edsr_baseline_x2_div2k.py']
scale = 4
model = dict(scale=scale, head=dict(scale=scale))
train_dataloader = dict(dataset=dict(
    scale=scale, lq_template='{}x4', data_prefix=dict(lq='DIV2K_train_LR_bicubic/X4'),
    pipeline=[
        dict(type='densekit.LoadPairImages', keys=('lq', 'gt')),
        dict(type='densekit.PairedRandomCrop', gt_patch_size=192),
        dict(type='densekit.PairedFlip'),
        dict(type='densekit.PairedRandomRot90'),
        dict(type='densekit.PackRestorationInputs'),
    ]))
val_dataloader = dict(dataset=dict(scale=scale, data_prefix=dict(lq='LRbicx4')))
test_dataloader = val_dataloader
val_evaluator = [dict(type='densekit.PSNR', crop_border=scale, convert_to='y'),
                 dict(type='densekit.SSIM', crop_border=scale, convert_to='y')]
test_evaluator = val_evaluator
