# 3D U-Net whose encoder is a 3-stage UniRepLKNet in 3D (densekit.UniRepLKNet, spatial_dims=3:
# depthwise 7x7x7 DilatedReparamBlocks with dilated 5/3/3 branches, SE and GRN FFNs) at strides
# 4/8/16, under densekit.HighResSkips (light conv levels at strides 1 and 2 for the decoder),
# on the built-in MR phantoms. Same data, loss and schedule as resunet-tiny_1xb2-600i_phantoms-48x48x48.py.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/phantoms_48x48x48.py',
          '../_base_/schedules/medical_cpu_600i.py', '../_base_/models/unet3d-tiny_phantoms.py']
unireplknet_arch = dict(depths=[1, 1, 2], widths=[16, 32, 48],
                        kernel_sizes=[(3,), (7,), (7, 3)])
model = dict(
    backbone=dict(type='densekit.HighResSkips',
                  backbone=dict(type='densekit.UniRepLKNet', arch=unireplknet_arch,
                                spatial_dims=3, in_channels=2, out_indices=(0, 1, 2)),
                  skip_channels=(8, 12)),
    decode_head=dict(in_channels='auto'))
