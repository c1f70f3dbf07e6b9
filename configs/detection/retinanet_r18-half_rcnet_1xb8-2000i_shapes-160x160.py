# RetinaNet with densekit.RCNet (reverse feature pyramid + cross-scale shift network) in place
# of FPN, otherwise identical to retinanet_r18-half_fpn_1xb8-2000i_shapes-160x160.py. Plain 3x3 fusion
# convs (the paper's DCNv2 is fusion_conv='dcnv2'), BN in the neck as the paper's RetinaNet
# config; 4 levels P3-P6 (the last from the C5 lateral by 1x1 conv + 2x max-pool), shift groups
# of 64 // 16 = 4 channels by +1, -1, +2, -2 levels.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/shapes_coco.py',
          '../_base_/schedules/det_cpu_2000i.py',
          '../_base_/models/retinanet_r18-half_shapes-160x160.py']
model = dict(neck=dict(type='densekit.RCNet', in_channels=[64, 128, 256],
                       out_channels=64, num_outs=4, norm_cfg=dict(type='BN'),
                       fusion_conv='conv'))
