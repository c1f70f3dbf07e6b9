# FCOS with an FPN (extra levels on the FPN output, ReLU before them): the GN head's losses and
# the test settings that every fcos_*_fpn_* leaf keeps. Leaves add `data_preprocessor`,
# `backbone`, the FPN widths and levels, and the head's widths, strides, GN groups and box loss.
task = 'det'
model = dict(
    type='mmdet.FCOS',
    neck=dict(type='densekit.FPN', add_extra_convs='on_output', relu_before_extra_convs=True),
    bbox_head=dict(
        type='mmdet.FCOSHead', norm_cfg=dict(type='GN', requires_grad=True),
        loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_centerness=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
