# CARN (64 channels, 3 cascading blocks of 3 residual units) x2 on DIV2K, Set5 validation.
_base_ = ['./edsr_baseline_x2_div2k.py']
model = dict(
    backbone=dict(_delete_=True, type='densekit.CARNBody', channels=64, num_blocks=3,
                  num_units=3),
    head=dict(act=True))
