# Reversible-encoder U-Net (RevUNetEncoder: a strided residual transition block per stage, then
# reversible couplings of mobile inverted bottlenecks that store no activations; CPU-tiny preset,
# widths 8-16-32-64) with the residual U-Net decoder, on the built-in MR phantoms; data, loss
# and schedule are the tiny residual U-Net's.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/phantoms_48x48x48.py',
          '../_base_/schedules/medical_cpu_600i.py', '../_base_/models/unet3d-tiny_phantoms.py']
model = dict(
    backbone=dict(type='RevUNetEncoder', in_channels=2, arch='tiny'),
    decode_head=dict(in_channels='auto'))
