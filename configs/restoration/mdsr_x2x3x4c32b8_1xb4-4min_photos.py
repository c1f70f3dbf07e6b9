# MDSR at CPU size (EDSR body of 8 blocks x 32 channels shared by x2, x3 and x4; per-scale
# pre-processing blocks and upsamplers) trained on all three scales at once on the built-in
# photos (see _base_/datasets/photos_sr_x2x3x4.py); the Restorer routes each batch to its
# scale's branch. 4 minutes on a 2-core CPU.
# The paper-size model is mdsr_x2c64b16_1xb16-300k_div2k.py.
_base_ = ['../_base_/datasets/photos_sr_x2x3x4.py',
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
infer_cfg = dict(tile=512, overlap=16)
