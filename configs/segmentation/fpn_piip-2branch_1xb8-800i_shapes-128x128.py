# PIIP-seg, CPU-sized: a 2-branch parameter-inverted pyramid (a wider ViT on the 64x64 image, a
# narrow ViT on the full 128x128 one) + densekit.FPN + densekit.FPNHead.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/shapes_seg.py',
          '../_base_/schedules/cpu_iters.py']
task = 'seg'
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(type='mmseg.SegDataPreProcessor', mean=[127.5, 127.5, 127.5],
                         std=[64.0, 64.0, 64.0], bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
                         size=(128, 128))
loss_decode = dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
visualizer = dict(type='mmseg.SegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')], alpha=0.6)


def vit(embed_dims, num_heads, img_size):
    return dict(type='mmseg.VisionTransformer', img_size=img_size, patch_size=8,
                embed_dims=embed_dims, num_layers=4, num_heads=num_heads, mlp_ratio=4,
                out_indices=3, with_cls_token=True, final_norm=True, interpolate_mode='bicubic')


model = dict(
    type='mmseg.EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='densekit.PIIP', branches=[vit(128, 4, 64), vit(64, 2, 128)],
                  resolutions=[64, 128], num_interactions=2,
                  interaction_cfg=dict(num_heads=4, num_points=4, value_ratio=0.5,
                                       ffn_ratio=0.25, drop_path_rate=0.0),
                  out_channels=64),
    neck=dict(type='densekit.FPN', in_channels='auto', out_channels=64, num_outs=4),
    decode_head=dict(type='densekit.FPNHead', in_channels='auto', in_index=[0, 1, 2, 3],
                     feature_strides=[4, 8, 16, 32], channels=64, dropout_ratio=0.0,
                     num_classes=7, norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=loss_decode),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
