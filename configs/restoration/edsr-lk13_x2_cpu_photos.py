# EDSR-like x2 super-resolution whose residual blocks are large-kernel blocks
# (densekit.LargeKernelResBlock: UniRepLKNet's DilatedReparamBlock, a depthwise 13x13 conv with
# parallel dilated 5/7/3/3/3 branches, then a pointwise GELU FFN), CPU-sized (6 blocks,
# 32 channels), on the built-in photos. Same data, head and schedule as
# edsr_baseline_x2_cpu_photos.py; the branches merge into one 13x13 conv per block for
# deployment (DilatedReparamBlock.switch_to_deploy).
_base_ = ['../_base_/datasets/photos_sr_x2.py',
          '../_base_/schedules/restoration_cpu.py']
task = 'sr'
scale = 2
model = dict(
    type='densekit.Restorer', scale=scale,
    data_preprocessor=dict(type='densekit.RestorationPreprocessor',
                           mean=(0.4488, 0.4371, 0.4040), std=(1.0, 1.0, 1.0)),  # DIV2K mean
    backbone=dict(type='densekit.EDSRBody', channels=32, num_blocks=6, res_scale=1.0,
                  block_cfg=dict(type='densekit.LargeKernelResBlock', kernel_size=13,
                                 ffn_ratio=2)),
    head=dict(type='densekit.PixelShuffleHead', in_channels=32, scale=scale,
              input_skip='bicubic'),
    pixel_loss=dict(type='densekit.PixelL1Loss'))
infer_cfg = dict(tile=512, overlap=16)
