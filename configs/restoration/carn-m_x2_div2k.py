# CARN-M (group convs with 4 groups, shared residual units) x2 on DIV2K, Set5 validation.
_base_ = ['./carn_x2_div2k.py']
model = dict(backbone=dict(groups=4, share_units=True), head=dict(groups=4))
