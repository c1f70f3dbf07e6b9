# mmseg EncoderDecoder for Cityscapes (19 classes, 512x1024 crops, SyncBN): the ImageNet-pretrained
# ResNet-50 V1c, a densekit.ASPPHead on its 2048-channel output and a densekit.FCNHead auxiliary
# head on the 1024-channel level. Leaves set the backbone's strides, dilations and out_indices,
# the heads' `in_index` and any neck (the dilated DeepLabV3 and the JPU FastFCN share the rest).
task = 'seg'
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(type='mmseg.SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
                         size=(512, 1024))
loss_decode = dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
auxiliary_head = dict(type='densekit.FCNHead', in_channels=1024, in_index=2, channels=256,
                      num_convs=1, concat_input=False, dropout_ratio=0.1, num_classes=19,
                      norm_cfg=norm_cfg, align_corners=False,
                      loss_decode=dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False,
                                       loss_weight=0.4))
visualizer = dict(type='mmseg.SegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
model = dict(
    type='mmseg.EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='mmseg.ResNetV1c', depth=50, num_stages=4, norm_cfg=norm_cfg,
                  norm_eval=False, style='pytorch', contract_dilation=True,
                  init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet50_v1c')),
    decode_head=dict(type='densekit.ASPPHead', in_channels=2048, channels=512,
                     dilations=(1, 12, 24, 36), dropout_ratio=0.1, num_classes=19,
                     norm_cfg=norm_cfg, align_corners=False, loss_decode=loss_decode),
    auxiliary_head=auxiliary_head,
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
