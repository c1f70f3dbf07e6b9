# Built-in synthetic shapes (densekit.tasks.segmentation.synthetic) in mmseg's folder layout.
# `densekit demo` generates it under data/shapes; so does generate_shapes_dataset('data/shapes').
dataset_type = 'densekit.ShapesDataset'
data_root = 'data/shapes'
crop_size = (128, 128)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmseg.LoadAnnotations'),
    dict(type='densekit.CheckLabelSize'),
    dict(type='mmseg.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmseg.RandomFlip', prob=0.5, direction='vertical'),
    dict(type='mmseg.PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmseg.LoadAnnotations'),
    dict(type='densekit.CheckLabelSize'),
    dict(type='mmseg.PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
