# PIIP-TSB (ViT-T at 512, ViT-S at 384, ViT-B at 256; patch 16) + densekit.FPN +
# densekit.FPNHead on ADE20K, 80k. Pretrained ViT weights: set each branch's init_cfg.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/ade20k_512x512.py',
          '../_base_/schedules/schedule_80k.py']
task = 'seg'
crop_size = (512, 512)
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(type='mmseg.SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
                         size=crop_size)
loss_decode = dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
visualizer = dict(type='mmseg.SegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])


def vit(embed_dims, num_heads, img_size, drop_path):
    return dict(type='mmseg.VisionTransformer', img_size=img_size, patch_size=16,
                embed_dims=embed_dims, num_layers=12, num_heads=num_heads, mlp_ratio=4,
                out_indices=11, with_cls_token=True, final_norm=True, drop_path_rate=drop_path,
                interpolate_mode='bicubic')


model = dict(
    type='mmseg.EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='densekit.PIIP',
                  branches=[vit(768, 12, 256, 0.4), vit(384, 6, 384, 0.15),
                            vit(192, 3, 512, 0.05)],
                  resolutions=[256, 384, 512], num_interactions=12,
                  interaction_cfg=dict(num_heads=16, num_points=4, value_ratio=0.5,
                                       ffn_ratio=0.25, drop_path_rate=0.1),
                  out_channels=768),
    neck=dict(type='densekit.FPN', in_channels=[768, 768, 768, 768], out_channels=256,
              num_outs=4),
    decode_head=dict(type='densekit.FPNHead', in_channels=[256, 256, 256, 256],
                     in_index=[0, 1, 2, 3], feature_strides=[4, 8, 16, 32], channels=128,
                     dropout_ratio=0.1, num_classes=150, norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=loss_decode),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
