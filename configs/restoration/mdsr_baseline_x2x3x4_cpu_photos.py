# MDSR at CPU size (EDSR body of 8 blocks x 32 channels shared by x2, x3 and x4; per-scale
# pre-processing blocks and upsamplers) trained on all three scales at once on the built-in
# photos: every pair is made from the same target at each scale by MATLAB bicubic
# (MultiScalePairedDataset + BicubicDegrade), and MixedScaleBatchSampler gives each batch one
# scale (equal weights, shuffled), which the Restorer routes to that scale's branch. Validation
# reports psnr_y_x2 / psnr_y_x3 / psnr_y_x4 (crop_border = scale). 4 minutes on a 2-core CPU.
# The paper-size model is mdsr_baseline_x2_div2k.py.
_base_ = ['../_base_/datasets/photos_sr_x2.py',
          '../_base_/schedules/restoration_cpu.py']
task = 'sr'
scales = (2, 3, 4)
model = dict(
    type='densekit.Restorer', scale=2,  # default scale of inference; batches carry their own
    data_preprocessor=dict(type='densekit.RestorationPreprocessor',
                           mean=(0.4488, 0.4371, 0.4040), std=(1.0, 1.0, 1.0)),  # DIV2K mean
    backbone=dict(type='densekit.EDSRBody', channels=32, num_blocks=8, res_scale=1.0,
                  scales=scales),
    head=dict(type='densekit.PixelShuffleHead', in_channels='auto', scales=scales,
              input_skip='bicubic'),  # global residual: starts at bicubic, learns faster
    pixel_loss=dict(type='densekit.PixelL1Loss'))
# each step trains one scale's branch: the other branches get no gradient in DDP
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
train_pipeline = [
    dict(type='densekit.LoadPairImages', keys=('gt',), cache=True),
    dict(type='densekit.BicubicDegrade', cache=True),  # whole image, at the pair's scale
    dict(type='densekit.PairedRandomCrop', lq_patch_size=24),  # same body cost at every scale
    dict(type='densekit.PairedFlip'),
    dict(type='densekit.PairedRandomRot90'),
    dict(type='densekit.PackRestorationInputs'),
]
train_dataloader = dict(
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='densekit.MixedScaleBatchSampler', scale_weights=(1, 1, 1)),
    dataset=dict(type='densekit.MultiScalePairedDataset', scales=scales,
                 data_prefix=dict(gt='train/GT'), pipeline=train_pipeline, _delete_=True,
                 data_root='data/restoration/photos'))
val_dataloader = dict(dataset=dict(
    type='densekit.MultiScalePairedDataset', scales=scales, _delete_=True,
    data_root='data/restoration/photos', data_prefix=dict(gt='val/GT', lq='val/LRx{scale}'),
    pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='densekit.PSNR', crop_border='scale', convert_to='y', per_scale=True),
    dict(type='densekit.SSIM', crop_border='scale', convert_to='y', per_scale=True),
]
test_evaluator = val_evaluator
infer_cfg = dict(tile=512, overlap=16)
