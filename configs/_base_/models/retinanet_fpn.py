# RetinaNet with an FPN, mmdet's COCO head: 4-conv RetinaHead on 256-channel levels (strides
# 8-128, 80 classes), focal loss and the train/test settings. Leaves add `data_preprocessor`,
# `backbone` and `neck`. (The CPU-sized shapes RetinaNets use retinanet_shapes-160x160.py.)
task = 'det'
model = dict(
    type='mmdet.RetinaNet',
    bbox_head=dict(
        type='mmdet.RetinaHead', num_classes=80, in_channels=256, stacked_convs=4,
        feat_channels=256,
        anchor_generator=dict(type='mmdet.AnchorGenerator', octave_base_scale=4,
                              scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                              strides=[8, 16, 32, 64, 128]),
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
