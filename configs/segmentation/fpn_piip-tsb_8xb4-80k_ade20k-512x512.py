# PIIP-TSB (ViT-T at 512, ViT-S at 384, ViT-B at 256; patch 16) + densekit.FPN +
# densekit.FPNHead on ADE20K, 80k. Pretrained ViT weights: set each branch's init_cfg.
_base_ = ['../_base_/models/fpn_ade20k-512x512.py', '../_base_/default_runtime.py',
          '../_base_/datasets/ade20k_512x512.py', '../_base_/schedules/schedule_80k.py']


def vit(embed_dims, num_heads, img_size, drop_path):
    return dict(type='mmseg.VisionTransformer', img_size=img_size, patch_size=16,
                embed_dims=embed_dims, num_layers=12, num_heads=num_heads, mlp_ratio=4,
                out_indices=11, with_cls_token=True, final_norm=True, drop_path_rate=drop_path,
                interpolate_mode='bicubic')


model = dict(
    backbone=dict(type='densekit.PIIP',
                  branches=[vit(768, 12, 256, 0.4), vit(384, 6, 384, 0.15),
                            vit(192, 3, 512, 0.05)],
                  resolutions=[256, 384, 512], num_interactions=12,
                  interaction_cfg=dict(num_heads=16, num_points=4, value_ratio=0.5,
                                       ffn_ratio=0.25, drop_path_rate=0.1),
                  out_channels=768),
    neck=dict(in_channels=[768, 768, 768, 768]))
