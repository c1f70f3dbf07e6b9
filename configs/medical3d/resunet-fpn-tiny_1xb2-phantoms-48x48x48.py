# The tiny residual U-Net with densekit's 3D FPN between encoder and decoder: every level is
# mapped to 16 channels (lateral 1x1 convs + top-down nearest upsampling) before decoding.
_base_ = ['./resunet-tiny_1xb2-phantoms-48x48x48.py']
model = dict(
    neck=dict(type='densekit.FPN', in_channels='auto', out_channels=16, num_outs=4,
              spatial_dims=3),
    decode_head=dict(in_channels='auto'))
