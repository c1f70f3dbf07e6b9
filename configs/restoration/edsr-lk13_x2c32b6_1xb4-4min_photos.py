# EDSR-like x2 super-resolution whose residual blocks are large-kernel blocks
# (densekit.LargeKernelResBlock: UniRepLKNet's DilatedReparamBlock, a depthwise 13x13 conv with
# parallel dilated 5/7/3/3/3 branches, then a pointwise GELU FFN), CPU-sized (6 blocks,
# 32 channels), on the built-in photos. Same data, head and schedule as
# edsr_x2c32b8_1xb4-4min_photos.py; the branches merge into one 13x13 conv per block for
# deployment (DilatedReparamBlock.switch_to_deploy).
_base_ = ['../_base_/datasets/photos_sr_x2.py', '../_base_/schedules/restoration_cpu.py',
          '../_base_/models/edsr_c32b8_cpu.py']
model = dict(
    backbone=dict(num_blocks=6,
                  block_cfg=dict(type='densekit.LargeKernelResBlock', kernel_size=13,
                                 ffn_ratio=2)))
