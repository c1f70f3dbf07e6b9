# Reversible-encoder U-Net (RevUNetEncoder: a strided residual transition block per stage, then
# reversible couplings of mobile inverted bottlenecks that store no activations; CPU-tiny preset,
# widths 8-16-32-64) with the residual U-Net decoder, on the built-in MR phantoms; data, loss
# and schedule are the tiny residual U-Net's.
_base_ = ['./resunet-tiny_1xb2-phantoms-48x48x48.py']
model = dict(
    backbone=dict(type='RevUNetEncoder', in_channels=2, arch='tiny'),
    decode_head=dict(in_channels='auto'))
