# EDSR baseline (16 blocks, 64 channels, res_scale 1) x2 on DIV2K, Set5 validation, 300k iters.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/div2k_sr_x2.py',
          '../_base_/schedules/restoration_gpu_300k.py', '../_base_/models/edsr_c64b16.py']
