# The COCO detectors' input normalisation (`data_preprocessor`: ImageNet mean/std on 0-255 RGB,
# padded to 32) and the ImageNet-pretrained mmdet ResNet-50 (`resnet50`, stage 1 frozen, BN in
# eval mode). No `model` here: leaves place them with {{_base_.data_preprocessor}} and
# {{_base_.resnet50}} next to a model part.
data_preprocessor = dict(type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32)
resnet50 = dict(type='mmdet.ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3),
                frozen_stages=1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True,
                style='pytorch',
                init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50'))
