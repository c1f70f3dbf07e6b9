# Faster R-CNN R50 + densekit.FPN, mmdet's standard COCO 1x setting (8 GPUs x 2 images).
_base_ = ['../_base_/models/faster-rcnn_fpn.py', '../_base_/models/resnet50_coco-det.py',
          '../_base_/default_runtime.py', '../_base_/datasets/coco_detection.py',
          '../_base_/schedules/schedule_1x.py']
model = dict(
    data_preprocessor={{_base_.data_preprocessor}},
    backbone={{_base_.resnet50}},
    neck=dict(type='densekit.FPN', in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5),
    rpn_head=dict(in_channels=256, feat_channels=256),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=256),
                  bbox_head=dict(in_channels=256, fc_out_channels=1024, num_classes=80)),
    train_cfg=dict(rpn=dict(sampler=dict(num=256)),
                   rpn_proposal=dict(nms_pre=2000, max_per_img=1000),
                   rcnn=dict(sampler=dict(num=512))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=1000)))
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001))
log_processor = dict(by_epoch=True)
