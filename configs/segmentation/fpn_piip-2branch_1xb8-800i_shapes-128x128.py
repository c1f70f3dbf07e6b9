# PIIP-seg, CPU-sized: a 2-branch parameter-inverted pyramid (a wider ViT on the 64x64 image, a
# narrow ViT on the full 128x128 one) + densekit.FPN + densekit.FPNHead.
_base_ = ['../_base_/models/fpn_shapes-128x128.py', '../_base_/default_runtime.py',
          '../_base_/datasets/shapes_seg.py', '../_base_/schedules/cpu_iters.py']
loss_decode = dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)


def vit(embed_dims, num_heads, img_size):
    return dict(type='mmseg.VisionTransformer', img_size=img_size, patch_size=8,
                embed_dims=embed_dims, num_layers=4, num_heads=num_heads, mlp_ratio=4,
                out_indices=3, with_cls_token=True, final_norm=True, interpolate_mode='bicubic')


model = dict(
    backbone=dict(type='densekit.PIIP', branches=[vit(128, 4, 64), vit(64, 2, 128)],
                  resolutions=[64, 128], num_interactions=2,
                  interaction_cfg=dict(num_heads=4, num_points=4, value_ratio=0.5,
                                       ffn_ratio=0.25, drop_path_rate=0.0),
                  out_channels=64),
    neck=dict(out_channels=64),
    decode_head=dict(channels=64, loss_decode=loss_decode))
