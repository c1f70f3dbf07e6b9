# MeshNet-16 (Fedorov et al. 2025: nine dilated 3^3 conv + BN + ReLU layers of constant width 16,
# no down/upsampling, then a 1^3 classifier; the whole network, so no decoder) on the built-in MR
# phantoms; data, loss and schedule are the tiny residual U-Net's.
#
# Dilations: the paper's schedule 1-2-4-8-16-16-8-4-2 (receptive field 123 voxels) is made for
# whole 256^3 brains. Here it trains on 48^3 patches: a dilation-16 tap leaves a 48-voxel patch
# on one side or the other for 2/3 of the positions along each axis (it then reads zero
# padding), and the receptive field would be 2.6x the patch. Halving the schedule (first layer
# kept at 1) gives 1-1-2-4-8-8-4-2-1: the dilation-8 taps stay inside the patch for 2/3 of each
# axis, and the receptive field, 1 + 2 * 31 = 63 voxels, covers the whole patch from its centre
# and about the whole 2 mm phantom (60 x 64 x 64 voxels). Chosen before any training run.
# Inference runs on the whole volume (roi_size=None: one window), as the paper does.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/phantoms_48x48x48.py',
          '../_base_/schedules/medical_cpu_600i.py']
task = 'medical'
model = dict(
    type='MedicalSegmentor',
    backbone=dict(type='MeshNet', in_channels=2, num_classes=3, channels=16,
                  dilations=(1, 1, 2, 4, 8, 8, 4, 2, 1)),
    decode_head=None,
    loss=dict(type='DiceCELoss', batch_dice=True),
    test_cfg=dict(roi_size=None, sw_batch_size=1))
