"""UniRepLKNet and RapidNet: pyramid shapes / strides, 3D, deploy equivalence, training steps."""
import math

import pytest
import torch
from mmengine.optim import OptimWrapper
from torch import nn

from densekit.backbones import RapidNet, UniRepLKNet
from densekit.blocks import DilatedReparamBlock
from densekit.registry import MODELS
from tests.backbone_harness import tiny_det_batch, tiny_retinanet

# tiny archs for fast tests (UniRepLKNet keeps its large kernels in stages 1-2)
TINY_URLK = dict(depths=[1, 1, 2, 1], widths=[8, 16, 24, 32],
                 kernel_sizes=[(3,), (13,), (13, 3), (7,)])
TINY_RAPID = dict(depths=[1, 1, 2, 2], widths=[8, 16, 24, 32], mldc_blocks=[0, 0, 1, 1])


def randomize(model, seed=0):
    """Non-trivial BN statistics, GRN and layer-scale values, so the deploy merge is tested."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                m.weight.copy_(1 + 0.2 * torch.randn(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
        for name, p in model.named_parameters():
            if name.endswith(('gamma', 'beta')) or 'layer_scale' in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return model


@pytest.mark.parametrize('cls,arch,widths', [
    (UniRepLKNet, 'atto', [40, 80, 160, 320]),
    (RapidNet, 'tiny', [32, 64, 112, 224]),
])
@pytest.mark.parametrize('size', [(64, 64), (97, 131), (33, 40)])
def test_levels_shapes_and_strides(cls, arch, widths, size):
    net = MODELS.build(dict(type=f'densekit.{cls.__name__}', arch=arch)).eval()
    assert net.strides == [4, 8, 16, 32] and net.out_channels == widths
    with torch.no_grad():
        feats = net(torch.rand(1, 3, *size))
    assert isinstance(feats, tuple) and len(feats) == 4
    for f, c, s in zip(feats, widths, net.strides):
        # every downsampling is a 3x3 stride-2 conv with padding 1 -> ceil per halving
        expected = list(size)
        for _ in range(int(math.log2(s))):
            expected = [math.ceil(e / 2) for e in expected]
        assert tuple(f.shape) == (1, c, *expected)


@pytest.mark.parametrize('cls,arch', [(UniRepLKNet, TINY_URLK), (RapidNet, TINY_RAPID)])
def test_out_indices_subsets(cls, arch):
    net = cls(arch, out_indices=(3, 1)).eval()
    assert net.out_channels == [32, 16] and net.strides == [32, 8]
    feats = net(torch.rand(2, 3, 64, 48))
    assert [tuple(f.shape) for f in feats] == [(2, 32, 2, 2), (2, 16, 8, 6)]
    net = cls(arch, out_indices=-1)
    assert net.strides == [32]


@pytest.mark.parametrize('cls,arch', [(UniRepLKNet, TINY_URLK), (RapidNet, TINY_RAPID)])
def test_3d_build_and_shapes(cls, arch):
    net = cls(arch, spatial_dims=3, in_channels=2).eval()
    with torch.no_grad():
        feats = net(torch.rand(1, 2, 32, 40, 33))
    assert [tuple(f.shape) for f in feats] == [
        (1, 8, 8, 10, 9), (1, 16, 4, 5, 5), (1, 24, 2, 3, 3), (1, 32, 1, 2, 2)]
    assert isinstance(net.stages[1].blocks[0].dwconv.lk_origin.conv, nn.Conv3d) \
        if cls is UniRepLKNet else isinstance(net.stem[0].conv, nn.Conv3d)


@pytest.mark.parametrize('spatial_dims,size', [(2, (97, 131)), (3, (33, 40, 35))])
def test_unireplknet_deploy_equivalence(spatial_dims, size):
    torch.manual_seed(0)
    arch = 'atto' if spatial_dims == 2 else TINY_URLK
    net = randomize(UniRepLKNet(arch, spatial_dims=spatial_dims, in_channels=3)).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        ref = net(x)
        net.switch_to_deploy()
        out = net(x)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert not hasattr(net.stages[1].blocks[0].dwconv, 'branches')
    for a, b in zip(out, ref):
        assert torch.allclose(a, b, atol=1e-5, rtol=0), (a - b).abs().max()


def test_rapidnet_deploy_equivalence():
    torch.manual_seed(0)
    net = randomize(RapidNet(TINY_RAPID)).eval()
    x = torch.randn(1, 3, 45, 38)
    with torch.no_grad():
        ref = net(x)
        net.switch_to_deploy()
        out = net(x)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert net.stages[3].blocks[1].pos_enc.deploy
    for a, b in zip(out, ref):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), (a - b).abs().max()


def test_rapidnet_arch_table():
    net = RapidNet('tiny')
    assert net.depths == [2, 2, 8, 4] and net.mldc_blocks == [0, 0, 2, 2]
    kinds = [type(b).__name__ for b in net.stages[2].blocks]
    assert kinds == ['InvertedResidualBlock'] * 6 + ['MLDCBlock'] * 2
    assert [RapidNet.arch_settings[a]['widths'][-1] for a in ('small', 'medium', 'base')] == \
        [224, 320, 416]
    with pytest.raises(ValueError, match='mldc_blocks'):
        RapidNet(dict(depths=[1, 1, 1, 1], widths=[8, 16, 24, 32], mldc_blocks=[0, 0, 2, 0]))


def test_unireplknet_arch_table():
    depths = {a: s['depths'] for a, s in UniRepLKNet.arch_settings.items()}
    assert depths['atto'] == depths['femto'] == depths['pico'] == [2, 2, 6, 2]
    assert depths['nano'] == [2, 2, 8, 2] and depths['tiny'] == [3, 3, 18, 3]
    net = UniRepLKNet('tiny')
    assert net.kernel_sizes[2] == (13, 3) * 9 and net.kernel_sizes[1] == (13, 13, 13)
    assert UniRepLKNet.arch_settings['small']['kernel_sizes'][2] == (13, 3, 3) * 9
    # K >= 7: dilated re-parameterisable block; K = 3: a plain depthwise conv
    assert isinstance(net.stages[2].blocks[0].dwconv, DilatedReparamBlock)
    assert isinstance(net.stages[2].blocks[1].dwconv, nn.Conv2d)


@pytest.mark.parametrize('arch,paper_millions', [('atto', 4.4), ('femto', 6.2)])
def test_unireplknet_deploy_parameter_count_matches_the_paper(arch, paper_millions):
    # the paper counts the deployed classifier: merged kernels, plus LayerNorm + Linear head
    net = UniRepLKNet(arch, out_norms=False).switch_to_deploy()
    c = net.widths[-1]
    total = sum(p.numel() for p in net.parameters()) + 2 * c + c * 1000 + 1000
    assert round(total / 1e6, 1) == paper_millions


@pytest.mark.parametrize('cls', [UniRepLKNet, RapidNet])
def test_bad_arch_names_the_arch(cls):
    with pytest.raises(ValueError, match="arch='huge-ish'"):
        cls('huge-ish')
    with pytest.raises(ValueError, match='spatial_dims'):
        cls(spatial_dims=4)


def test_unireplknet_bad_kernel_table():
    with pytest.raises(ValueError, match='kernel_sizes'):
        UniRepLKNet(dict(depths=[1, 1, 2, 1], widths=[8, 16, 24, 32],
                         kernel_sizes=[(3,), (13,), (13,), (7,)]))
    with pytest.raises(ValueError, match='kernel_sizes'):
        UniRepLKNet(dict(depths=[1, 1], widths=[8, 16]), out_indices=(0, 1))


def _step(model, data, backbone):
    model.train()
    before = [p.detach().clone() for p in backbone.parameters()]
    losses = model.train_step(data, OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-2)))
    assert losses and all(torch.isfinite(v).all() for k, v in losses.items() if 'loss' in k)
    changed = [not torch.equal(a, b) for a, b in zip(backbone.parameters(), before)]
    assert sum(changed) > len(changed) // 2


@pytest.mark.parametrize('backbone', [dict(type='densekit.UniRepLKNet', arch=TINY_URLK),
                                      dict(type='densekit.RapidNet', arch=TINY_RAPID)],
                         ids=lambda b: b['type'])
def test_one_step_in_mmseg_encoder_decoder(backbone):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='mmseg.EncoderDecoder',
        data_preprocessor=dict(type='mmseg.SegDataPreProcessor', mean=[127.5] * 3,
                               std=[64.0] * 3, size=(64, 64), pad_val=0, seg_pad_val=255),
        backbone=backbone,
        neck=dict(type='densekit.FPN', in_channels=[8, 16, 24, 32], out_channels=16, num_outs=4),
        decode_head=dict(type='densekit.FPNHead', in_channels=[16] * 4, in_index=[0, 1, 2, 3],
                         feature_strides=[4, 8, 16, 32], channels=16, dropout_ratio=0.0,
                         num_classes=3, norm_cfg=dict(type='BN'), align_corners=False,
                         loss_decode=dict(type='mmseg.CrossEntropyLoss', loss_weight=1.0)),
        train_cfg=dict(), test_cfg=dict(mode='whole')))
    samples = []
    for _ in range(2):
        s = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 3, (1, 64, 64))))
        s.set_metainfo(dict(img_shape=(64, 64), ori_shape=(64, 64)))
        samples.append(s)
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8) for _ in range(2)],
                data_samples=samples)
    _step(model, data, model.backbone)


@pytest.mark.parametrize('backbone', [
    dict(type='densekit.UniRepLKNet', arch=TINY_URLK, out_indices=(1, 2, 3)),
    dict(type='densekit.RapidNet', arch=TINY_RAPID, out_indices=(1, 2, 3))],
    ids=lambda b: b['type'])
def test_one_step_in_mmdet_retinanet(backbone):
    model = tiny_retinanet(backbone, [16, 24, 32])
    data = tiny_det_batch([[6.0, 10.0, 40.0, 36.0], [28.0, 20.0, 60.0, 62.0]])
    _step(model, data, model.backbone)


@pytest.mark.parametrize('backbone', [
    dict(type='densekit.UniRepLKNet', arch=TINY_URLK, spatial_dims=3, in_channels=2),
    dict(type='densekit.RapidNet', arch=TINY_RAPID, spatial_dims=3, in_channels=2)],
    ids=lambda b: b['type'])
def test_one_step_in_medical_3d_segmentor(backbone):
    """The stride-4 pyramid reaches the U-Net decoder through HighResSkips (strides 1, 2)."""
    from mmengine.structures import BaseDataElement

    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='densekit.MedicalSegmentor',
        backbone=dict(type='densekit.HighResSkips', backbone=backbone, skip_channels=(4, 8)),
        decode_head=dict(type='densekit.UNetDecoderHead', in_channels=[4, 8, 8, 16, 24, 32],
                         num_classes=3),
        test_cfg=dict(roi_size=(32, 32, 32), overlap=0.25)))
    x = torch.rand(2, 2, 32, 32, 32)
    logits = model.logits(x, all_scales=True)
    assert [tuple(o.shape) for o in logits] == [(2, 3) + (32 // s,) * 3 for s in (1, 2, 4, 8, 16)]
    samples = [BaseDataElement(gt_seg=torch.randint(0, 3, (32, 32, 32))) for _ in range(2)]
    _step(model, dict(inputs=list(x), data_samples=samples), model.backbone.backbone)
    model.eval()
    assert model.predict_volume(torch.rand(2, 36, 33, 32)).shape == (36, 33, 32)
