# EDSR (large: 32 blocks, 256 channels, res_scale 0.1) x2 on DIV2K, Set5 validation.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/div2k_sr_x2.py',
          '../_base_/schedules/restoration_gpu_300k.py', '../_base_/models/edsr_c64b16.py']
model = dict(backbone=dict(channels=256, num_blocks=32, res_scale=0.1),
             head=dict(in_channels=256))
infer_cfg = dict(tile=256, overlap=16)
