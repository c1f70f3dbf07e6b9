# RetinaNet for the built-in 160x160 shapes (6 classes), CPU-sized: data preprocessor, a
# 2-conv RetinaHead on 64-channel levels (strides 8-64) and the train/test settings. Leaves
# add `backbone` and `neck` (or use retinanet_r18-half_shapes-160x160.py for the ResNet).
task = 'det'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='mmdet.RetinaNet',
    data_preprocessor=dict(type='mmdet.DetDataPreprocessor', mean=[127.5, 127.5, 127.5],
                           std=[64.0, 64.0, 64.0], bgr_to_rgb=True, pad_size_divisor=32),
    bbox_head=dict(
        type='mmdet.RetinaHead', num_classes=6, in_channels='auto', stacked_convs=2, feat_channels=64,
        anchor_generator=dict(type='mmdet.AnchorGenerator', octave_base_scale=4,
                              scales_per_octave=2, ratios=[0.5, 1.0, 2.0],
                              strides=[8, 16, 32, 64]),
        bbox_coder=dict(type='mmdet.DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0],
                        target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='mmdet.L1Loss', loss_weight=1.0)),
    train_cfg=dict(assigner=dict(type='mmdet.MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
                                 min_pos_iou=0, ignore_iof_thr=-1),
                   sampler=dict(type='mmdet.PseudoSampler'), allowed_border=-1, pos_weight=-1,
                   debug=False),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
