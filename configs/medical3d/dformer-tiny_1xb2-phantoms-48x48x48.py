# D-Former encoder (dilated transformer, CPU-tiny preset: embed 16, depths 2-2-2, attention
# groups of 4x4x4 tokens at patch 2, plus an 8-channel full-resolution conv level) with the
# residual U-Net decoder, on the built-in MR phantoms; data, loss and schedule are the tiny
# residual U-Net's.
_base_ = ['./resunet-tiny_1xb2-phantoms-48x48x48.py']
model = dict(
    backbone=dict(type='DFormerEncoder', in_channels=2, arch='tiny'),
    decode_head=dict(in_channels='auto'))
