# PIIP-TSB detector: ViT-T at 1024, ViT-S at 768, ViT-B at 512 (patch 16) + densekit.FPN +
# RetinaNet head, COCO 1x. Set each branch's init_cfg to load pretrained ViT weights.
_base_ = ['../_base_/models/retinanet_fpn.py', '../_base_/models/resnet50_coco-det.py',
          '../_base_/default_runtime.py', '../_base_/datasets/coco_detection.py',
          '../_base_/schedules/schedule_1x.py']


def vit(embed_dims, num_heads, img_size, drop_path):
    return dict(type='mmseg.VisionTransformer', img_size=img_size, patch_size=16,
                embed_dims=embed_dims, num_layers=12, num_heads=num_heads, mlp_ratio=4,
                out_indices=11, with_cls_token=True, final_norm=True, drop_path_rate=drop_path,
                interpolate_mode='bicubic')


model = dict(
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(type='densekit.PIIP',
                  branches=[vit(768, 12, 512, 0.4), vit(384, 6, 768, 0.15),
                            vit(192, 3, 1024, 0.05)],
                  resolutions=[512, 768, 1024], num_interactions=12,
                  interaction_cfg=dict(num_heads=16, num_points=4, value_ratio=0.5,
                                       ffn_ratio=0.25, drop_path_rate=0.1),
                  out_channels=768),
    neck=dict(type='densekit.FPN', in_channels=[768, 768, 768, 768], out_channels=256,
              start_level=1, add_extra_convs='on_input', num_outs=5))
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05))
log_processor = dict(by_epoch=True)
