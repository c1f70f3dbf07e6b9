# EDSR baseline x4 on DIV2K (patch 192 = 48 LR pixels), Set5 validation.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/div2k_sr_x4.py',
          '../_base_/schedules/restoration_gpu_300k.py', '../_base_/models/edsr_c64b16.py']
scale = 4
model = dict(scale=scale, head=dict(scale=scale))
