# DRSformer (C=48, blocks 4/6/6/8, heads 1/2/4/8, FFN 2.66, MEFC 4 steps) on Rain200H.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/rain200h.py',
          '../_base_/schedules/restoration_adamw-cosine_300k.py', '../_base_/models/derain_restorer.py']
model = dict(
    backbone=dict(type='densekit.DRSformer', dim=48, num_blocks=(4, 6, 6, 8), heads=(1, 2, 4, 8),
                  ffn_expansion=2.66, mefc=True, mefc_steps=4))
