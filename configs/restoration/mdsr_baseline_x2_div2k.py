# MDSR baseline: one EDSR body shared by x2/x3/x4 with scale-specific pre-processing blocks and
# upsamplers. This config trains and evaluates the x2 branch; to train all scales, alternate
# the `scale` of the dataset (the Restorer reads each batch's scale from its samples).
_base_ = ['./edsr_baseline_x2_div2k.py']
model = dict(backbone=dict(scales=(2, 3, 4)), head=dict(scales=(2, 3, 4)))
