# PIIP, 2 branches, scaled for CPU: ViT-B-like (384) on a 112 image + ViT-T-like (96) on the
# full 224 image, depth 12. `backbone` outputs 4 maps (strides 4/8/16/32) for an FPN;
# `single_branch_baseline` is the largest ViT at the full resolution, for comparisons.
input_size = 224
piip_depth = 12
piip_channels = 384


def _vit(embed_dims, num_heads, img_size):
    return dict(type='mmseg.VisionTransformer', img_size=img_size, patch_size=16,
                embed_dims=embed_dims, num_layers=piip_depth, num_heads=num_heads, mlp_ratio=4,
                out_indices=piip_depth - 1, with_cls_token=True, final_norm=True,
                interpolate_mode='bicubic')


backbone = dict(
    type='densekit.PIIP',
    branches=[_vit(384, 6, 112), _vit(96, 3, 224)],
    resolutions=[112, 224],
    num_interactions=4,
    interaction_cfg=dict(num_heads=16, num_points=4, value_ratio=0.5, ffn_ratio=0.25,
                         drop_path_rate=0.0),
    out_channels=piip_channels)
neck = dict(type='mmdet.FPN', in_channels=[piip_channels] * 4, out_channels=256, num_outs=5)
single_branch_baseline = _vit(384, 6, input_size)
