# D-Former encoder (dilated transformer, CPU-tiny preset: embed 16, depths 2-2-2, attention
# groups of 4x4x4 tokens at patch 2, plus an 8-channel full-resolution conv level) with the
# residual U-Net decoder, on the built-in MR phantoms; data, loss and schedule are the tiny
# residual U-Net's.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/phantoms_48x48x48.py',
          '../_base_/schedules/medical_cpu_600i.py', '../_base_/models/unet3d-tiny_phantoms.py']
model = dict(
    backbone=dict(type='DFormerEncoder', in_channels=2, arch='tiny'),
    decode_head=dict(in_channels='auto'))
