# RetinaNet on FasterNet-T0 (partial convolutions) with densekit.FPN, CPU-sized, trained from
# scratch on the built-in synthetic shapes (160x160, 6 classes): the half-width ResNet-18
# RetinaNet with the backbone swapped. FasterNet's stride-8/16/32 levels (80/160/320 channels)
# feed the FPN; an extra stride-64 level comes from the input.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/shapes_coco.py',
          '../_base_/schedules/det_cpu_2000i.py',
          '../_base_/models/retinanet_shapes-160x160.py']
model = dict(
    backbone=dict(type='densekit.FasterNet', arch='t0', out_indices=(1, 2, 3),
                  frozen_stages=-1, norm_eval=False),
    neck=dict(type='densekit.FPN', in_channels=[80, 160, 320], out_channels=64, start_level=0,
              add_extra_convs='on_input', num_outs=4))
