# RetinaNet with a half-width ResNet-18 (mmdet ResNet) and densekit.FPN, CPU-sized, trained from
# scratch on the built-in synthetic shapes (160x160, 6 classes).
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/shapes_coco.py',
          '../_base_/schedules/det_cpu_2000i.py',
          '../_base_/models/retinanet_r18-half_shapes-160x160.py']
model = dict(
    neck=dict(type='densekit.FPN', in_channels='auto', out_channels=64, start_level=0,
              add_extra_convs='on_input', num_outs=4))
