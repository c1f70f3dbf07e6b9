# Semantic FPN (densekit.FPN + densekit.FPNHead) on a half-width ResNet-18 (mmseg ResNetV1c),
# CPU-sized, on the built-in shapes.
_base_ = ['../_base_/models/fpn_shapes-128x128.py', '../_base_/default_runtime.py',
          '../_base_/datasets/shapes_seg.py', '../_base_/schedules/cpu_iters.py']
# cross-entropy plus (softmax) Dice: Dice weighs every class by its area, which lifts the
# small shape classes against the dominant background early in a short run
loss_decode = [dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
               dict(type='mmseg.DiceLoss', use_sigmoid=False, loss_weight=0.5)]
model = dict(
    backbone=dict(type='mmseg.ResNetV1c', depth=18, stem_channels=32, base_channels=32,
                  num_stages=4, out_indices=(0, 1, 2, 3), norm_cfg={{_base_.norm_cfg}},
                  norm_eval=False, style='pytorch', contract_dilation=True),
    neck=dict(out_channels=32),
    decode_head=dict(channels=32, loss_decode=loss_decode))
# A 2000-iteration poly schedule for the 6-minute CPU budget: at 0.17-0.22 s/iteration on
# 2 cores the budget (--time-budget 360, or the demo's) stops it after ~1700 iterations, before
# the learning rate has decayed. Two such runs gave mIoU 82.3 and 82.4; one complete
# 1600-iteration schedule gave 73.7.
optim_wrapper = dict(optimizer=dict(lr=3e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=50, end=2000, by_epoch=False),
]
train_cfg = dict(max_iters=2000, val_interval=2000)
default_hooks = dict(checkpoint=dict(interval=2000))
