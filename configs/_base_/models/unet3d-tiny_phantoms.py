# 3D segmenter for the phantoms (3 classes): residual U-Net decoder, Dice + CE with deep
# supervision, Gaussian sliding-window inference over 48^3 windows. Leaves add the `backbone`
# (and optionally a `neck`).
task = 'medical'
model = dict(
    type='MedicalSegmentor',
    decode_head=dict(type='UNetDecoderHead', in_channels='auto', num_classes=3),
    loss=dict(type='DiceCELoss', batch_dice=True),
    test_cfg=dict(roi_size=(48, 48, 48), sw_batch_size=1, overlap=0.5, mode='gaussian'))
