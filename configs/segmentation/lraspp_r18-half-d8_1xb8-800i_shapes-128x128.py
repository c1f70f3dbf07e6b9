# Lite R-ASPP (MobileNetV3's segmentation head, densekit.LRASPPHead) on the same dilated
# half-width ResNet-18, data and schedule as deeplabv3_r18-half-d8_1xb8-800i_shapes-128x128.py, so
# the two heads compare on one backbone. Skips from the stride-4 and stride-8 levels, as
# mmseg's LR-ASPP configs take two; the deepest map is 16x16 here, so the context pool is
# global (the paper's 49-pixel window for 1024x2048 crops would be clamped to it anyway).
_base_ = ['../_base_/models/r18-half-d8_encoder-decoder.py', '../_base_/default_runtime.py',
          '../_base_/datasets/shapes_seg.py', '../_base_/schedules/cpu_iters.py']
model = dict(
    decode_head=dict(type='densekit.LRASPPHead', in_channels='auto', in_index=(0, 1, 3),
                     branch_channels=(16, 32), channels=64, pool_kernel=None,
                     dropout_ratio=0.1, num_classes=7, norm_cfg={{_base_.norm_cfg}},
                     act_cfg=dict(type='ReLU'), align_corners=False,
                     loss_decode={{_base_.loss_decode}}))
