# DRSformer at CPU size (C=16, one block per level, one-step MEFCs with 4 of the 8 experts) on
# the built-in photos with synthetic Rain100L-style rain, 48-pixel crops. The paper-size model is
# drsformer_rain200h.py.
_base_ = ['../_base_/datasets/photos_rain.py',
          '../_base_/schedules/restoration_cpu.py']
task = 'derain'
model = dict(
    type='densekit.Restorer', scale=1,
    data_preprocessor=dict(type='densekit.RestorationPreprocessor'),
    backbone=dict(type='densekit.DRSformer', dim=16, num_blocks=(1, 1, 1, 1), heads=(1, 2, 2, 4),
                  ffn_expansion=2.0, mefc=True, mefc_steps=1,
                  mefc_experts=('sep1', 'sep3', 'dil3', 'avg3')),
    head=dict(type='densekit.ReconstructionHead', in_channels=32),
    pixel_loss=dict(type='densekit.PixelL1Loss'))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='densekit.LoadPairImages', keys=('gt',), cache=True),
    dict(type='densekit.PairedRandomCrop', gt_patch_size=48),
    dict(type='densekit.AddRainStreaks', preset='light', density=(0.001, 0.003),
         intensity=(0.4, 0.8)),
    dict(type='densekit.PairedFlip', vertical=0.0),
    dict(type='densekit.PackRestorationInputs'),
]))
infer_cfg = dict(tile=512, overlap=32)
