# CARN-M (group convs with 4 groups, shared residual units) x2 on DIV2K, Set5 validation.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/div2k_sr_x2.py',
          '../_base_/schedules/restoration_gpu_300k.py', '../_base_/models/carn_c64.py']
model = dict(backbone=dict(groups=4, share_units=True), head=dict(groups=4))
