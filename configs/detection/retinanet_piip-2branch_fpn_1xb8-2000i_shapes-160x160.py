# PIIP detector, CPU-sized: a 2-branch parameter-inverted pyramid (a wider ViT on the 80x80
# image, a narrow ViT on the full 160x160 one) + densekit.FPN + RetinaNet head.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/shapes_coco.py',
          '../_base_/schedules/det_cpu_2000i.py',
          '../_base_/models/retinanet_shapes-160x160.py']


def vit(embed_dims, num_heads, img_size):
    return dict(type='mmseg.VisionTransformer', img_size=img_size, patch_size=8,
                embed_dims=embed_dims, num_layers=4, num_heads=num_heads, mlp_ratio=4,
                out_indices=3, with_cls_token=True, final_norm=True, interpolate_mode='bicubic')


model = dict(
    backbone=dict(type='densekit.PIIP',
                  branches=[vit(128, 4, 80), vit(64, 2, 160)], resolutions=[80, 160],
                  num_interactions=2,
                  interaction_cfg=dict(num_heads=4, num_points=4, value_ratio=0.5,
                                       ffn_ratio=0.25, drop_path_rate=0.0),
                  out_channels=64),
    neck=dict(type='densekit.FPN', in_channels=[64, 64, 64, 64], out_channels=64, start_level=1,
              add_extra_convs='on_input', num_outs=4))
