"""ConvNeXt, InceptionNeXt, FasterNet (+ PConv): shapes, contracts, numerics, training steps."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import densekit  # noqa: F401
from densekit.backbones import ConvNeXt, FasterNet, HighResSkips, InceptionNeXt
from densekit.backbones.convnext import ConvNeXtBlock
from densekit.backbones.fasternet import FasterNetBlock
from densekit.backbones.inceptionnext import InceptionDWConv
from densekit.blocks.pconv import PConv
from densekit.layers import ChannelLayerNorm
from densekit.registry import MODELS
from tests.backbone_harness import tiny_det_batch, tiny_retinanet

TINY = dict(depths=[1, 1, 1, 1], widths=[8, 16, 24, 32])
SMALL_ARCH = {ConvNeXt: 'atto', InceptionNeXt: 'atto', FasterNet: 't0'}
FAMILY = [ConvNeXt, InceptionNeXt, FasterNet]


def tiny(cls, **kwargs):
    """A 4-stage, one-block-per-stage variant (InceptionNeXt needs >= 8 channels per branch
    set, so widths are multiples of 8)."""
    arch = dict(TINY)
    if cls is InceptionNeXt:
        arch['branch_ratio'] = 0.125
        arch['widths'] = [16, 32, 48, 64]
    return cls(arch=arch, **kwargs)


# shapes and the out_channels / strides contract ---------------------------------------------------

@pytest.mark.parametrize('cls', FAMILY, ids=lambda c: c.__name__)
@pytest.mark.parametrize('size', [(64, 64), (97, 131), (37, 50)])
def test_2d_levels_match_strides(cls, size):
    torch.manual_seed(0)
    net = cls(SMALL_ARCH[cls]).eval()
    assert net.strides == [4, 8, 16, 32]
    assert net.out_channels == net.widths == [40, 80, 160, 320]
    with torch.no_grad():
        outs = net(torch.rand(1, 3, *size))
    assert [tuple(o.shape) for o in outs] == [
        (1, c, size[0] // s, size[1] // s) for c, s in zip(net.out_channels, net.strides)]
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('cls', FAMILY, ids=lambda c: c.__name__)
def test_3d_odd_volume_and_selected_levels(cls):
    torch.manual_seed(0)
    net = tiny(cls, spatial_dims=3, in_channels=2, out_indices=(3, 1)).eval()
    assert net.strides == [32, 8]
    assert net.out_channels == [net.widths[3], net.widths[1]]
    assert net.total_stride == (32, 32, 32)
    size = (33, 45, 37)
    with torch.no_grad():
        outs = net(torch.rand(2, 2, *size))
    assert [tuple(o.shape) for o in outs] == [
        (2, c) + tuple(d // s for d in size) for c, s in zip(net.out_channels, net.strides)]


def test_convnext_tiny_builds_from_registry_alone():
    net = MODELS.build(dict(type='densekit.ConvNeXt', arch='tiny'))
    assert isinstance(net, ConvNeXt)
    # ConvNeXt-T: 28.6M with the ImageNet head; the backbone alone (4 output norms) 27.8M
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(27.82e6, rel=2e-3)
    with torch.no_grad():
        outs = net.eval()(torch.rand(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [(96, 16, 16), (192, 8, 8), (384, 4, 4),
                                                   (768, 2, 2)]


@pytest.mark.parametrize('cfg, params', [
    # backbone-only parameter counts; the papers' totals add the classification head
    (dict(type='densekit.InceptionNeXt', arch='tiny'), 23.97e6),   # paper 28M with MLP head
    (dict(type='densekit.FasterNet', arch='t0'), 2.22e6),          # paper 3.9M with head
    (dict(type='densekit.FasterNet', arch='t2'), 12.72e6),         # paper 15.0M with head
    (dict(type='densekit.ConvNeXt', arch='atto'), 3.375e6),        # paper 3.7M with head
])
def test_parameter_counts_follow_the_papers(cfg, params):
    net = MODELS.build(cfg)
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(params, rel=2e-3)


# argument checks -------------------------------------------------------------------------------

@pytest.mark.parametrize('cls', FAMILY, ids=lambda c: c.__name__)
@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='huge'), r"arch='huge'.*expected one of"),
    (dict(out_indices=(0, 4)), 'out_indices'),
    (dict(out_indices=()), 'out_indices'),
    (dict(spatial_dims=1), 'spatial_dims'),
    (dict(spatial_dims=4), 'spatial_dims'),
    (dict(frozen_stages=7), 'frozen_stages'),
])
def test_bad_arguments_name_themselves(cls, kwargs, match):
    kwargs = {'arch': SMALL_ARCH[cls], **kwargs}
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_bad_block_arguments():
    with pytest.raises(ValueError, match='kernel_size'):
        ConvNeXt('atto', kernel_size=4)
    with pytest.raises(ValueError, match='branch_ratio'):
        InceptionDWConv(2, 8, branch_ratio=0.05)  # no channel per branch
    with pytest.raises(ValueError, match='branch_ratio'):
        InceptionDWConv(3, 10, branch_ratio=0.3)  # 4 conv branches of 3 > 10 channels
    with pytest.raises(ValueError, match='n_div'):
        PConv(2, 3, n_div=4)
    with pytest.raises(ValueError, match='layer_scale_init_value'):
        FasterNet('t0', layer_scale_init_value=-1.0)
    with pytest.raises(ValueError, match='in_channels=3'):
        FasterNet('t0')(torch.rand(1, 4, 64, 64))


# numerics of the building blocks ---------------------------------------------------------------

@pytest.mark.parametrize('spatial_dims', [2, 3])
def test_channel_layer_norm_equals_layer_norm_on_channels_last(spatial_dims):
    norm = ChannelLayerNorm(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    x = torch.randn(2, 6, *([5] * spatial_dims))
    ref = F.layer_norm(x.movedim(1, -1), (6,), norm.weight, norm.bias, 1e-6).movedim(-1, 1)
    torch.testing.assert_close(norm(x), ref, atol=1e-6, rtol=0)
    plain = ChannelLayerNorm(6)(x * 3 + 1)  # unit weight, zero bias: zero mean, unit variance
    torch.testing.assert_close(plain.mean(1), torch.zeros_like(plain[:, 0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(plain.var(1, unbiased=False), torch.ones_like(plain[:, 0]),
                               atol=1e-3, rtol=0)


@pytest.mark.parametrize('spatial_dims', [2, 3])
def test_convnext_block_matches_manual_computation(spatial_dims):
    torch.manual_seed(0)
    block = ConvNeXtBlock(spatial_dims, 8, kernel_size=3, layer_scale_init_value=0.5).eval()
    x = torch.randn(2, 8, *([6] * spatial_dims))
    conv = F.conv2d if spatial_dims == 2 else F.conv3d
    y = conv(x, block.depthwise_conv.weight, block.depthwise_conv.bias, padding=1, groups=8)
    y = y.movedim(1, -1)
    y = F.layer_norm(y, (8,), block.norm.weight, block.norm.bias, 1e-6)
    y = F.linear(F.gelu(F.linear(y, block.pointwise_conv1.weight, block.pointwise_conv1.bias)),
                 block.pointwise_conv2.weight, block.pointwise_conv2.bias)
    ref = x + (0.5 * y).movedim(-1, 1)
    torch.testing.assert_close(block(x), ref, atol=1e-5, rtol=0)


def test_inception_dwconv_2d_split_order_and_values():
    torch.manual_seed(0)
    mixer = InceptionDWConv(2, 32, band_kernel_size=5, branch_ratio=0.125)
    assert mixer.split_sizes == (20, 4, 4, 4)
    assert mixer.dwconv_bands[0].kernel_size == (1, 5)  # the 1 x k band first, as the paper
    assert mixer.dwconv_bands[1].kernel_size == (5, 1)
    x = torch.randn(2, 32, 9, 13)
    out = mixer(x)
    assert torch.equal(out[:, :20], x[:, :20])
    sq, w, h = mixer.dwconv_square, *mixer.dwconv_bands
    ref = torch.cat([
        F.conv2d(x[:, 20:24], sq.weight, sq.bias, padding=1, groups=4),
        F.conv2d(x[:, 24:28], w.weight, w.bias, padding=(0, 2), groups=4),
        F.conv2d(x[:, 28:32], h.weight, h.bias, padding=(2, 0), groups=4)], dim=1)
    torch.testing.assert_close(out[:, 20:], ref, atol=1e-6, rtol=0)


def test_inception_dwconv_3d_has_one_band_per_axis():
    mixer = InceptionDWConv(3, 32, band_kernel_size=7, branch_ratio=0.125)
    assert mixer.split_sizes == (16, 4, 4, 4, 4)
    assert [m.kernel_size for m in mixer.dwconv_bands] == [(1, 1, 7), (1, 7, 1), (7, 1, 1)]
    x = torch.randn(1, 32, 5, 7, 9)
    out = mixer(x)
    assert out.shape == x.shape and torch.equal(out[:, :16], x[:, :16])
    # an impulse in the last-axis band's channels spreads along that axis only
    impulse = torch.zeros(1, 32, 9, 9, 9)
    impulse[:, 20, 4, 4, 4] = 1.0  # first band channel: kernel (1, 1, 7)
    with torch.no_grad():
        mixer.dwconv_bands[0].bias.zero_()
        response = mixer(impulse)[0, 20]
    nz = response.abs() > 0
    assert nz[4, 4].sum() == 7 and nz.sum() == 7


@pytest.mark.parametrize('spatial_dims', [2, 3])
def test_metanext_block_folded_inference_equals_plain_computation(spatial_dims):
    from densekit.backbones.inceptionnext import MetaNeXtBlock

    torch.manual_seed(0)
    block = MetaNeXtBlock(spatial_dims, 16, InceptionDWConv(spatial_dims, 16, branch_ratio=0.125),
                          layer_scale_init_value=0.7)
    block.train()
    block(torch.randn(4, 16, *([6] * spatial_dims)))  # non-trivial running statistics
    block.eval()
    x = torch.randn(2, 16, *([5] * spatial_dims))
    conv = F.conv2d if spatial_dims == 2 else F.conv3d
    y = block.norm(block.token_mixer(x))
    y = conv(F.gelu(conv(y, block.mlp.fc1.weight, block.mlp.fc1.bias)), block.mlp.fc2.weight,
             block.mlp.fc2.bias)
    ref = x + 0.7 * y
    torch.testing.assert_close(block(x), ref, atol=1e-5, rtol=1e-5)  # autograd path
    with torch.inference_mode():
        torch.testing.assert_close(block(x), ref.detach(), atol=1e-5, rtol=1e-5)  # folded
    with torch.no_grad():  # the fold is cached, and refreshed when a parameter changes
        block.gamma.mul_(2)
        torch.testing.assert_close(block(x), x + 1.4 * y.detach(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('spatial_dims', [2, 3])
def test_pconv_equals_conv_on_first_slice_plus_identity(spatial_dims):
    torch.manual_seed(0)
    pconv = PConv(spatial_dims, 18, n_div=4)
    assert pconv.conv_channels == 4
    x = torch.randn(2, 18, *([7] * spatial_dims))
    conv = F.conv2d if spatial_dims == 2 else F.conv3d
    head = conv(x[:, :4], pconv.conv.weight, None, padding=1)
    out = pconv(x)
    torch.testing.assert_close(out[:, :4], head, atol=1e-6, rtol=0)
    assert torch.equal(out[:, 4:], x[:, 4:])  # untouched channels bit-identical
    # the in-place inference path gives the same tensor and restores its input exactly
    x0 = x.clone()
    with torch.no_grad():
        saved = pconv.mix_(x)
        assert torch.equal(x, out.detach())
        pconv.restore_(x, saved)
    assert torch.equal(x, x0)


def test_pconv_gradients_reach_conv_and_untouched_channels():
    pconv = PConv(2, 8, n_div=4)
    x = torch.randn(1, 8, 5, 5, requires_grad=True)
    pconv(x).pow(2).sum().backward()
    assert pconv.conv.weight.grad.abs().sum() > 0
    torch.testing.assert_close(x.grad[:, 2:], 2 * x[:, 2:].detach())
    with pytest.raises(RuntimeError, match='inference only'):
        pconv.mix_(x)


@pytest.mark.parametrize('spatial_dims', [2, 3])
def test_fasternet_block_inplace_inference_equals_autograd_path(spatial_dims):
    torch.manual_seed(0)
    block = FasterNetBlock(spatial_dims, 16, act_cfg='GELU', layer_scale_init_value=0.3)
    block.train()
    block(torch.randn(4, 16, *([6] * spatial_dims)))  # non-trivial running statistics
    block.eval()
    x = torch.randn(2, 16, *([7] * spatial_dims))
    x0 = x.clone()
    ref = block(x)  # grad enabled: split + cat, unfolded BatchNorm
    with torch.inference_mode():
        fast = block(x)
    torch.testing.assert_close(fast, ref.detach(), atol=1e-5, rtol=1e-5)
    assert torch.equal(x, x0)


# freezing, gradients --------------------------------------------------------------------------

@pytest.mark.parametrize('cls', FAMILY, ids=lambda c: c.__name__)
def test_every_parameter_gets_a_gradient_and_frozen_stages_none(cls):
    net = tiny(cls, frozen_stages=1).train()
    outs = net(torch.rand(2, 3, 64, 64))
    sum(o.mean() for o in outs).backward()
    for name, p in net.named_parameters():
        frozen = name.startswith(('stem.', 'stages.0.', 'out_norms.0.'))
        assert p.requires_grad is not frozen, name
        if not frozen:
            assert p.grad is not None, name


# training steps inside segmentors and detectors ------------------------------------------------

def _seg_model(backbone):
    norm_cfg = dict(type='BN', requires_grad=True)
    return MODELS.build(dict(
        type='mmseg.EncoderDecoder',
        data_preprocessor=dict(type='mmseg.SegDataPreProcessor', mean=[127.5] * 3,
                               std=[64.0] * 3, size=(64, 64), pad_val=0, seg_pad_val=255),
        backbone=backbone,
        neck=dict(type='densekit.FPN', in_channels=[40, 80, 160, 320], out_channels=16,
                  num_outs=4),
        decode_head=dict(type='densekit.FPNHead', in_channels=[16] * 4, in_index=[0, 1, 2, 3],
                         feature_strides=[4, 8, 16, 32], channels=16, dropout_ratio=0.0,
                         num_classes=3, norm_cfg=norm_cfg, align_corners=False,
                         loss_decode=dict(type='mmseg.CrossEntropyLoss', loss_weight=1.0)),
        train_cfg=dict(), test_cfg=dict(mode='whole')))


def _train_step(model, data):
    from mmengine.optim import OptimWrapper

    model.train()
    before = [p.detach().clone() for p in model.backbone.parameters()]
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-2))
    losses = model.train_step(data, wrapper)
    assert losses and all(torch.isfinite(v).all() for k, v in losses.items() if 'loss' in k)
    changed = [not torch.equal(a, b) for a, b in zip(model.backbone.parameters(), before)]
    assert sum(changed) > len(changed) // 2  # the backbone trains


@pytest.mark.parametrize('backbone', [
    dict(type='densekit.ConvNeXt', arch='atto'),
    dict(type='densekit.InceptionNeXt', arch='atto'),
    dict(type='densekit.FasterNet', arch='t0'),
], ids=lambda b: b['type'])
def test_one_step_in_mmseg_encoder_decoder(backbone):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    torch.manual_seed(0)
    model = _seg_model(backbone)
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 64, 64)))
        sample.set_metainfo(dict(img_shape=(64, 64), ori_shape=(64, 64)))
        samples.append(sample)
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8) for _ in range(2)],
                data_samples=samples)
    _train_step(model, data)


@pytest.mark.parametrize('backbone', [
    dict(type='densekit.ConvNeXt', arch='atto', out_indices=(1, 2, 3)),
    dict(type='densekit.FasterNet', arch='t0', out_indices=(1, 2, 3)),
], ids=lambda b: b['type'])
def test_one_step_in_mmdet_retinanet(backbone):
    model = tiny_retinanet(backbone, [80, 160, 320])
    data = tiny_det_batch([[8.0, 8.0, 40.0, 36.0], [30.0, 20.0, 60.0, 60.0]])
    _train_step(model, data)


@pytest.mark.parametrize('cls', FAMILY, ids=lambda c: c.__name__)
def test_3d_backbone_in_medical_segmentor(cls):
    """Stride-4 backbones feed the U-Net decoder through HighResSkips (levels at 1 and 2)."""
    from mmengine.structures import BaseDataElement

    torch.manual_seed(0)
    arch = dict(depths=[1, 1, 1, 1], widths=[16, 32, 48, 64])
    backbone = dict(type=f'densekit.{cls.__name__}', arch=arch, spatial_dims=3, in_channels=2)
    skips = dict(type='densekit.HighResSkips', backbone=backbone, skip_channels=(4, 8))
    model = MODELS.build(dict(
        type='densekit.MedicalSegmentor', backbone=skips,
        decode_head=dict(type='densekit.UNetDecoderHead', in_channels=[4, 8, 16, 32, 48, 64],
                         num_classes=3),
        test_cfg=dict(roi_size=(32, 32, 32), overlap=0.25)))
    assert model.backbone.strides == [1, 2, 4, 8, 16, 32]
    x = torch.rand(2, 2, 32, 32, 32)
    logits = model.logits(x, all_scales=True)
    assert [tuple(o.shape[2:]) for o in logits] == [(32 // s,) * 3 for s in (1, 2, 4, 8, 16)]
    samples = [BaseDataElement(gt_seg=torch.randint(0, 3, (32, 32, 32))) for _ in range(2)]
    from mmengine.optim import OptimWrapper

    model.train()
    before = [p.detach().clone() for p in model.backbone.backbone.parameters()]
    losses = model.train_step(dict(inputs=list(x), data_samples=samples),
                              OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-2)))
    assert all(torch.isfinite(v) for v in losses.values())
    after = list(model.backbone.backbone.parameters())
    assert sum(not torch.equal(a, b) for a, b in zip(after, before)) > len(before) // 2
    model.eval()
    assert model.predict_volume(torch.rand(2, 40, 36, 32)).shape == (40, 36, 32)


def test_highres_skips_checks_strides():
    with pytest.raises(ValueError, match='skip_channels'):
        HighResSkips(dict(type='densekit.FasterNet', arch='t0'), skip_channels=(4, 8, 16))
    with pytest.raises(ValueError, match='needs a pyramid backbone'):
        HighResSkips(nn.Conv2d(3, 3, 1))
