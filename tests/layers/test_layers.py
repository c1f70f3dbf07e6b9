"""densekit.layers: spec normalisation, factory, ConvNormAct vs mmcv ConvModule, BN folding and
padding-tap skipping (numbers compared against the reference ops)."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from torch import nn

from densekit.layers import (
    ConvNormAct,
    LayerFactory,
    LayerSpec,
    SeparableConvNormAct,
    channels_last,
    conv_polyphase,
    conv_skip_padding,
    fold_conv_bn,
    fuse_conv_bn,
    normalize_spec,
    set_fast_eval,
    valid_tap_fraction,
    zone_plan,
)
from tests.helpers.numerics import (
    assert_close_to_reference,
    float64_copy,
    randomize_norms_,
    torch_threads,
)

ATOL = RTOL = 1e-5  # |a - b| <= 1e-5 + 1e-5 |b|

@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    with torch_threads(1):
        yield


@pytest.mark.parametrize('spec, expected', [
    ('BN', LayerSpec('BN')),
    (('GN', {'num_groups': 4}), LayerSpec('GN', {'num_groups': 4})),
    (nn.GELU, LayerSpec(nn.GELU)),
    (dict(type='GN', num_groups=32), LayerSpec('GN', {'num_groups': 32})),
    (dict(type='ReLU'), LayerSpec('ReLU')),
    (None, None),
])
def test_normalize_spec_forms(spec, expected):
    assert normalize_spec(spec, 'norm_cfg') == expected


@pytest.mark.parametrize('spec, error', [
    (dict(num_groups=2), ValueError), (42, TypeError), (('GN', 3), ValueError)])
def test_normalize_spec_rejects(spec, error):
    with pytest.raises(error, match='norm_cfg'):
        normalize_spec(spec, 'norm_cfg')


@pytest.mark.parametrize('spatial_dims', [1, 4, '2', True, None])
def test_factory_rejects_spatial_dims(spatial_dims):
    with pytest.raises(ValueError, match='spatial_dims'):
        LayerFactory(spatial_dims)


@pytest.mark.parametrize('spatial_dims', [2, 3])
def test_factory_builds_dimension_specific_layers(spatial_dims):
    f = LayerFactory(spatial_dims)
    conv = f.conv(4, 8, 3, padding=1)
    assert conv.weight.dim() == spatial_dims + 2
    abbr, bn = f.norm(dict(type='BN'), 8)
    assert abbr == 'bn' and isinstance(bn, (nn.BatchNorm2d, nn.BatchNorm3d))
    assert bn.weight.shape == (8,) and type(bn).__name__.endswith(f'{spatial_dims}d')
    assert f.norm(('GN', dict(num_groups=4)), 8)[0] == 'gn'
    assert f.act(dict(type='ReLU'), inplace=False).inplace is False
    assert f.interp_mode('linear') == {2: 'bilinear', 3: 'trilinear'}[spatial_dims]
    assert f.interp_mode('bilinear') == f.interp_mode('linear')
    pool = f.pool('adaptive_avg', 1)
    x = torch.rand(2, 8, *([5] * spatial_dims))
    assert pool(x).shape == (2, 8) + (1,) * spatial_dims
    assert f.upsample(scale_factor=2)(x).shape[2:] == (10,) * spatial_dims


def test_factory_rejects_bad_layers():
    f = LayerFactory(3)
    with pytest.raises(ValueError, match='num_groups=32 does not divide the 48'):
        f.norm(dict(type='GN', num_groups=32), 48)
    with pytest.raises(ValueError, match='BN2d'):
        f.norm('BN2d', 8)
    with pytest.raises(ValueError, match='conv_cfg'):
        f.conv(4, 4, 3, spec='Conv2d')
    with pytest.raises(ValueError, match='act_cfg'):
        f.act('NoSuchAct')


@pytest.mark.parametrize('norm_cfg, act_cfg, bias', [
    (dict(type='BN'), dict(type='ReLU'), 'auto'),
    (dict(type='GN', num_groups=2), dict(type='LeakyReLU', negative_slope=0.2), 'auto'),
    (None, dict(type='PReLU'), 'auto'),
    (dict(type='BN'), None, True),
])
def test_conv_norm_act_matches_mmcv_conv_module(norm_cfg, act_cfg, bias):
    torch.manual_seed(0)
    peer = ConvModule(6, 8, 3, padding=2, dilation=2, bias=bias, norm_cfg=norm_cfg,
                      act_cfg=act_cfg)
    ours = ConvNormAct(2, 6, 8, 3, padding=2, dilation=2, bias=bias, norm_cfg=norm_cfg,
                       act_cfg=act_cfg)
    assert list(ours.state_dict()) == list(peer.state_dict())
    randomize_norms_(peer)
    ours.load_state_dict(peer.state_dict())
    x = torch.randn(2, 6, 13, 9)
    for train in (True, False):
        peer.train(train), ours.train(train)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), peer(x), atol=ATOL, rtol=RTOL)


def test_separable_matches_mmcv():
    torch.manual_seed(0)
    cfg = dict(norm_cfg=dict(type='BN'), dw_act_cfg=None)
    peer = DepthwiseSeparableConvModule(6, 4, 3, padding=3, dilation=3, **cfg)
    ours = SeparableConvNormAct(2, 6, 4, 3, padding=3, dilation=3, **cfg)
    assert list(ours.state_dict()) == list(peer.state_dict())
    randomize_norms_(peer)
    ours.load_state_dict(peer.state_dict())
    x = torch.randn(1, 6, 11, 7)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), peer.eval()(x), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize('spatial_dims', [2, 3])
def test_fold_and_fuse_match_conv_then_bn(spatial_dims):
    torch.manual_seed(0)
    f = LayerFactory(spatial_dims)
    conv = f.conv(4, 6, 3, padding=1, bias=True)
    bn = randomize_norms_(f.norm('BN', 6)[1]).eval()
    x = torch.randn(2, 4, *([7] * spatial_dims))
    with torch.no_grad():
        expected = bn(conv(x))
        weight, bias = fold_conv_bn(conv.weight, conv.bias, bn)
        torch.testing.assert_close(conv._conv_forward(x, weight, bias), expected, atol=ATOL,
                                   rtol=RTOL)
        torch.testing.assert_close(fuse_conv_bn(conv, bn)(x), expected, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize('spatial_dims', [2, 3])
def test_fast_eval_matches_unfused_and_tracks_updates(spatial_dims):
    torch.manual_seed(0)
    block = randomize_norms_(ConvNormAct(spatial_dims, 4, 6, 3, padding=1,
                                         norm_cfg=dict(type='BN'))).eval()
    x = torch.randn(1, 4, *([6] * spatial_dims))
    with torch.inference_mode():
        fast = block(x)
    assert block.folds_norm()
    with torch.no_grad():
        slow = set_fast_eval(block, False)(x)
    torch.testing.assert_close(fast, slow, atol=ATOL, rtol=RTOL)
    set_fast_eval(block, True)
    with torch.no_grad():
        block.bn.running_mean.add_(1.0)  # in-place update must invalidate the folded cache
        torch.testing.assert_close(block(x), set_fast_eval(block, False)(x), atol=ATOL, rtol=RTOL)
    # eval mode with autograd (frozen BN): folded on the fly, gradients equal the unfused ones
    set_fast_eval(block, True)
    xg = x.clone().requires_grad_()
    block(xg).square().sum().backward()
    grad_fast = xg.grad.clone()
    xg.grad = None
    set_fast_eval(block, False)(xg).square().sum().backward()
    torch.testing.assert_close(grad_fast, xg.grad, atol=1e-4, rtol=1e-5)


def test_deploy_fuse_removes_norm_keys():
    block = randomize_norms_(ConvNormAct(2, 3, 5, 3, padding=1, norm_cfg='BN')).eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        expected = set_fast_eval(block, False)(x)
        block.fuse()
        assert not any(k.startswith('bn.') for k in block.state_dict())
        torch.testing.assert_close(block(x), expected, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize('spatial, dilation', [
    ((97, 131), 24), ((64, 64), 36), ((17, 23), 30), ((9, 13, 11), 6), ((5, 8, 7), (1, 6, 3))])
def test_skip_padding_conv_matches_conv(spatial, dilation):
    torch.manual_seed(0)
    dims = len(spatial)
    dil = (dilation,) * dims if isinstance(dilation, int) else dilation
    conv = F.conv2d if dims == 2 else F.conv3d
    x = torch.randn(2, 3, *spatial, requires_grad=True)
    w = torch.randn(5, 3, *([3] * dims), requires_grad=True)
    b = torch.randn(5, requires_grad=True)
    assert valid_tap_fraction(spatial, (3,) * dims, dil, dil) < 0.9
    zones = zone_plan(spatial, (3,) * dims, dil, dil)
    ours = conv_skip_padding(x, w, b, zones, dil, dil)
    ref = conv(x, w, b, 1, dil, dil)
    x64, w64, b64 = float64_copy((x, w, b))
    ref64 = conv(x64, w64, b64, 1, dil, dil)
    assert_close_to_reference(ours, ref, ref64, what='forward')
    grad = torch.randn_like(ref)
    got = torch.autograd.grad(ours, (x, w, b), grad)
    want = torch.autograd.grad(ref, (x, w, b), grad)
    want64 = torch.autograd.grad(ref64, (x64, w64, b64), grad.double())
    # the weight gradient sums ~25k products: summation order differs by CPU kernel family
    assert_close_to_reference(got, want, want64, what='grad (x, w, b)')


@pytest.mark.parametrize('spatial, dilation', [
    ((64, 64), (8, 8)), ((97, 131), (6, 6)), ((9, 13, 11), (2, 3, 5)), ((7, 10, 12), (1, 4, 4))])
def test_polyphase_depthwise_matches_dilated_conv(spatial, dilation):
    torch.manual_seed(0)
    dims = len(spatial)
    conv = F.conv2d if dims == 2 else F.conv3d
    x = channels_last(torch.randn(2, 6, *spatial)).requires_grad_()
    w = torch.randn(6, 1, *([3] * dims), requires_grad=True)
    b = torch.randn(6, requires_grad=True)
    ours = conv_polyphase(x, w, b, dilation, groups=6)
    ref = conv(x, w, b, 1, dilation, dilation, 6)
    x64, w64, b64 = float64_copy((x, w, b))
    ref64 = conv(x64, w64, b64, 1, dilation, dilation, 6)
    assert ours.shape == ref.shape
    assert_close_to_reference(ours, ref, ref64, what='forward')
    grad = torch.randn_like(ref)
    got = torch.autograd.grad(ours, (x, w, b), grad)
    want = torch.autograd.grad(ref, (x, w, b), grad)
    want64 = torch.autograd.grad(ref64, (x64, w64, b64), grad.double())
    assert_close_to_reference(got[0], want[0], want64[0], what='grad x')
    # weight / bias gradients each sum N * H * W products; oneDNN's AVX2 depthwise
    # backward-weights kernel sums them in a less lucky order than its dilated one (measured
    # 2.2e-3 vs 8e-5 on values of 400 at 97x131): bound by the reduction length instead
    assert_close_to_reference(got[1:], want[1:], want64[1:], terms=x.shape[0] * math.prod(spatial),
                              what='grad (w, b)')


@pytest.mark.parametrize('dilation', [1, 3, 8])
@pytest.mark.parametrize('layout', ['nchw', 'channels_last'])
def test_depthwise_block_paths_agree(dilation, layout):
    """Whatever algorithm the block picks (plain / channels-last / polyphase), numbers agree."""
    torch.manual_seed(0)
    block = randomize_norms_(ConvNormAct(2, 8, 8, 3, padding=dilation, dilation=dilation,
                                         groups=8, norm_cfg='BN'))
    x = torch.randn(2, 8, 37, 45)
    x_in = channels_last(x) if layout == 'channels_last' else x
    ref = F.batch_norm(F.conv2d(x, block.conv.weight, None, 1, dilation, dilation, 8),
                       block.bn.running_mean, block.bn.running_var, block.bn.weight,
                       block.bn.bias, False).relu()
    with torch.inference_mode():
        torch.testing.assert_close(block.eval()(x_in), ref, atol=ATOL, rtol=RTOL)
    xg = x_in.detach().clone().requires_grad_()
    out = block.train()(xg)
    xr = x.clone().requires_grad_()
    ref = F.batch_norm(F.conv2d(xr, block.conv.weight, None, 1, dilation, dilation, 8),
                       None, None, block.bn.weight, block.bn.bias, True).relu()
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=RTOL)
    grad = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(out, xg, grad)[0],
                               torch.autograd.grad(ref, xr, grad)[0], atol=1e-4, rtol=1e-5)


def test_global_response_norm_one_class_for_both_layouts():
    """The ConvNeXt (channels-last) and UniRepLKNet (channels-first) GRNs are one class: both
    layouts give the float64 definition, and each other's result after a transpose."""
    from densekit.backbones.convnext import GlobalResponseNorm as ConvNeXtGRN
    from densekit.backbones.unireplknet import GRN
    from densekit.layers import GlobalResponseNorm

    assert ConvNeXtGRN is GlobalResponseNorm
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 5, 7, 3, generator=gen, dtype=torch.float64)  # (N, C, *spatial)
    first = GRN(3, 6).double()
    last = GlobalResponseNorm(6).double()
    assert first.gamma.shape == (1, 6, 1, 1, 1) and last.gamma.shape == (6,)
    with torch.no_grad():
        for grn in (first, last):
            grn.gamma.copy_(torch.randn(grn.gamma.shape, generator=gen))
            grn.beta.copy_(torch.randn(grn.beta.shape, generator=gen))
        last.gamma.copy_(first.gamma.flatten())
        last.beta.copy_(first.beta.flatten())
        norms = x.square().sum(dim=(2, 3, 4), keepdim=True).sqrt()
        ref = x + first.gamma * (x * norms / (norms.mean(dim=1, keepdim=True) + 1e-6)) + first.beta
        torch.testing.assert_close(first(x), ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(last(x.movedim(1, -1)).movedim(-1, 1), ref, rtol=1e-12,
                                   atol=1e-12)
    with pytest.raises(ValueError, match='channels must be a positive int'):
        GlobalResponseNorm(0)
