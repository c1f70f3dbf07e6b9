# RetinaNet + densekit.FPN followed by densekit.SEPC (light: plain shared convs, no deformable
# conv, no mmcv op), otherwise identical to retinanet_r18-half_fpn_1xb8-2000i_shapes-160x160.py.
# mmengine builds a neck list as a Sequential: FPN's 4 levels feed 4 stacked PConvs with
# integrated BatchNorm. The RetinaHead keeps its 2 stacked convs (the neck returns one feature
# map per level; the official SepcRetinaHead with separate cls/loc features is not used).
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/shapes_coco.py',
          '../_base_/schedules/det_cpu_2000i.py',
          '../_base_/models/retinanet_r18-half_shapes-160x160.py']
model = dict(neck=[
    dict(type='densekit.FPN', in_channels=[64, 128, 256], out_channels=64, start_level=0,
         add_extra_convs='on_input', num_outs=4),
    dict(type='densekit.SEPC', in_channels=64, num_levels=4, num_pconvs=4, deform=False),
])
