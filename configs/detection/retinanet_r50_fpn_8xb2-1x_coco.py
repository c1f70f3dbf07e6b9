# RetinaNet R50 + densekit.FPN, mmdet's standard COCO 1x setting (8 GPUs x 2 images).
_base_ = ['../_base_/models/retinanet_fpn.py', '../_base_/models/resnet50_coco-det.py',
          '../_base_/default_runtime.py', '../_base_/datasets/coco_detection.py',
          '../_base_/schedules/schedule_1x.py']
model = dict(
    data_preprocessor={{_base_.data_preprocessor}},
    backbone={{_base_.resnet50}},
    neck=dict(type='densekit.FPN', in_channels=[256, 512, 1024, 2048], out_channels=256,
              start_level=1, add_extra_convs='on_input', num_outs=5))
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001))
log_processor = dict(by_epoch=True)
