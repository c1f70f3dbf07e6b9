# DeepLabV3 R50-D8 with densekit.ASPPHead, mmseg's standard Cityscapes 80k setting
# (mmseg reference: 79.32 mIoU). 4 GPUs x 2 images.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/cityscapes_512x1024.py',
          '../_base_/schedules/schedule_80k.py']
task = 'seg'
crop_size = (512, 1024)
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(type='mmseg.SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
                         size=crop_size)
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
    backbone=dict(type='mmseg.ResNetV1c', depth=50, num_stages=4, out_indices=(0, 1, 2, 3),
                  dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), norm_cfg=norm_cfg,
                  norm_eval=False, style='pytorch', contract_dilation=True,
                  init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet50_v1c')),
    decode_head=dict(type='densekit.ASPPHead', in_channels=2048, in_index=3, channels=512,
                     dilations=(1, 12, 24, 36), dropout_ratio=0.1, num_classes=19,
                     norm_cfg=norm_cfg, align_corners=False, loss_decode=loss_decode),
    auxiliary_head=auxiliary_head,
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
