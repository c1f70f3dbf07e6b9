# MDSR baseline: one EDSR body shared by x2/x3/x4 with scale-specific pre-processing blocks and
# upsamplers. This config trains and evaluates the x2 branch; to train all scales, alternate
# the `scale` of the dataset (the Restorer reads each batch's scale from its samples).
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/div2k_sr_x2.py',
          '../_base_/schedules/restoration_gpu_300k.py', '../_base_/models/edsr_c64b16.py']
model = dict(backbone=dict(scales=(2, 3, 4)), head=dict(scales=(2, 3, 4)))
