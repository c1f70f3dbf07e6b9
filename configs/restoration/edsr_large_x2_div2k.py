# EDSR (large: 32 blocks, 256 channels, res_scale 0.1) x2 on DIV2K, Set5 validation.
_base_ = ['./edsr_baseline_x2_div2k.py']
model = dict(backbone=dict(channels=256, num_blocks=32, res_scale=0.1),
             head=dict(in_channels=256))
infer_cfg = dict(tile=256, overlap=16)
