"""SEPC neck: integrated BatchNorm against a hand computation over the concatenated pyramid,
PConv against its three-term sum, deformable version, FPN wrapping, validation, 2D and 3D."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from mmengine.model import Sequential

from densekit.errors import ArgumentError
from densekit.necks import FPN
from densekit.necks.sepc import SEPC, IntegratedBatchNorm, PyramidConv

# float64 reference: a sum of 3 convs of 3^d * C taps, a few dozen rounding steps of 2^-53
TOL64 = 1e-12


def _pyramid(sizes, channels=4, batch=2, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, channels, *s, generator=gen, dtype=dtype) for s in sizes]


ODD_2D = [(7, 5), (4, 3), (2, 2)]
ODD_3D = [(5, 7, 3), (3, 4, 2), (2, 2, 1)]


@pytest.mark.parametrize('sizes', [ODD_2D, ODD_3D])
def test_ibn_train_statistics_are_those_of_the_concatenated_levels(sizes):
    feats = _pyramid(sizes)
    ibn = IntegratedBatchNorm(4, momentum=0.1).double().train()
    with torch.no_grad():
        ibn.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
        ibn.bias.copy_(torch.tensor([0.0, 1.0, -2.0, 0.3]))
    outs = ibn(feats)
    # hand computation: every (sample, position) of every level is one observation
    flat = torch.cat([f.permute(1, 0, *range(2, f.dim())).reshape(4, -1) for f in feats], 1)
    n = flat.shape[1]
    assert n == 2 * sum(torch.Size(s).numel() for s in sizes)
    mean = flat.sum(1) / n
    var = ((flat - mean[:, None]) ** 2).sum(1) / n
    shape = (1, 4) + (1,) * len(sizes[0])
    for f, o in zip(feats, outs):
        want = (f - mean.view(shape)) / torch.sqrt(var.view(shape) + ibn.eps)
        want = want * ibn.weight.view(shape) + ibn.bias.view(shape)
        assert o.shape == f.shape
        torch.testing.assert_close(o, want, rtol=0, atol=TOL64)
    torch.testing.assert_close(ibn.running_mean, 0.1 * mean, rtol=0, atol=TOL64)
    torch.testing.assert_close(ibn.running_var, 0.9 + 0.1 * var * n / (n - 1), rtol=0,
                               atol=TOL64)
    # and it is not a per-level BatchNorm: the finest level alone has other statistics
    per_level = F.batch_norm(feats[0], None, None, ibn.weight, ibn.bias, training=True)
    assert float((per_level - outs[0]).abs().max()) > 1e-3


def test_ibn_eval_uses_the_shared_running_statistics():
    feats = _pyramid(ODD_2D)
    ibn = IntegratedBatchNorm(4).double().eval()
    with torch.no_grad():
        ibn.running_mean.copy_(torch.tensor([0.5, -1.0, 0.0, 2.0]))
        ibn.running_var.copy_(torch.tensor([1.0, 4.0, 0.25, 2.0]))
    for f, o in zip(feats, ibn(feats)):
        want = (f - ibn.running_mean.view(1, 4, 1, 1)) / torch.sqrt(
            ibn.running_var.view(1, 4, 1, 1) + ibn.eps)
        torch.testing.assert_close(o, want, rtol=0, atol=TOL64)
    with pytest.raises(TypeError, match='list of feature maps'):
        ibn(feats[0])


def test_pconv_by_hand_with_1x1_kernels():
    # one channel, 1x1 kernels w_same=a, w_finer=b, w_coarser=c (biases 0.5, 0.25, -1):
    # out_0 = a x0 + 0.5 + up(c x1 - 1); out_1 = a x1 + 0.5 + b x0[::2] + 0.25 + up(c x2 - 1);
    # out_2 = a x2 + 0.5 + b x1[::2] + 0.25 (align_corners=True: 2 -> 4 samples at 0, 1/3, 2/3, 1)
    pconv = PyramidConv(2, 1, kernel_size=1, integrated_bn=False).double()
    a, b, c = 2.0, -3.0, 0.5
    with torch.no_grad():
        for conv, w, bias in ((pconv.same, a, 0.5), (pconv.finer, b, 0.25),
                              (pconv.coarser, c, -1.0)):
            conv.weight.fill_(w)
            conv.bias.fill_(bias)
    x0 = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64).view(1, 1, 1, 4)
    x1 = torch.tensor([[10.0, 40.0]], dtype=torch.float64).view(1, 1, 1, 2)
    x2 = torch.tensor([[7.0]], dtype=torch.float64).view(1, 1, 1, 1)
    out0, out1, out2 = pconv([x0, x1, x2])
    up1 = [c * 10 - 1 + t * c * 30 for t in (0, 1 / 3, 2 / 3, 1)]  # c x1 - 1 interpolated
    want0 = [a * v + 0.5 + u for v, u in zip([1, 2, 3, 4], up1)]
    want1 = [a * v + 0.5 + b * f + 0.25 + (c * 7 - 1) for v, f in zip([10, 40], [1, 3])]
    want2 = [a * 7 + 0.5 + b * 10 + 0.25]
    for got, want in ((out0, want0), (out1, want1), (out2, want2)):
        torch.testing.assert_close(got.flatten(), torch.tensor(want, dtype=torch.float64),
                                   rtol=0, atol=TOL64)


@pytest.mark.parametrize('spatial_dims, sizes', [(2, ODD_2D), (3, ODD_3D)])
def test_pconv_equals_the_three_term_sum(spatial_dims, sizes):
    torch.manual_seed(0)
    pconv = PyramidConv(spatial_dims, 4, integrated_bn=False).double()
    with torch.no_grad():
        for conv in (pconv.same, pconv.finer, pconv.coarser):
            conv.weight.normal_()
            conv.bias.normal_()
    feats = _pyramid(sizes)
    conv = F.conv2d if spatial_dims == 2 else F.conv3d
    mode = 'bilinear' if spatial_dims == 2 else 'trilinear'
    outs = pconv(feats)
    for lvl, x in enumerate(feats):
        want = conv(x, pconv.same.weight, pconv.same.bias, padding=1)
        if lvl > 0:
            want = want + conv(feats[lvl - 1], pconv.finer.weight, pconv.finer.bias, stride=2,
                               padding=1)
        if lvl + 1 < len(feats):
            coarse = conv(feats[lvl + 1], pconv.coarser.weight, pconv.coarser.bias, padding=1)
            want = want + F.interpolate(coarse, size=x.shape[2:], mode=mode, align_corners=True)
        torch.testing.assert_close(outs[lvl], want, rtol=0, atol=1e-11)


@pytest.mark.parametrize('spatial_dims, sizes', [(2, ODD_2D), (3, ODD_3D)])
def test_sepc_keeps_shapes_and_ends_in_ibn_relu(spatial_dims, sizes):
    sepc = SEPC([4] * 3, num_levels=3, num_pconvs=2, spatial_dims=spatial_dims).train()
    outs = sepc(_pyramid(sizes, dtype=torch.float32))
    assert [tuple(o.shape[2:]) for o in outs] == [tuple(s) for s in sizes]
    assert all(float(o.min()) >= 0 for o in outs)
    # the iBN normalised the whole pyramid: per channel, mean of the pre-ReLU values ~ 0,
    # so roughly half the positions are active
    active = sum(int((o > 0).sum()) for o in outs) / sum(o.numel() for o in outs)
    assert 0.3 < active < 0.7


def test_deformable_version_starts_as_the_plain_one_and_moves_only_high_levels():
    torch.manual_seed(0)
    plain = PyramidConv(2, 4, integrated_bn=False).double()
    deform = PyramidConv(2, 4, integrated_bn=False, deform=True).double()
    deform.load_state_dict(plain.state_dict(), strict=False)
    feats = _pyramid(ODD_2D)
    for p, d in zip(plain(feats), deform(feats)):
        torch.testing.assert_close(d, p, rtol=0, atol=1e-10)
    with torch.no_grad():
        for term in deform.offsets.values():
            term.conv.weight.normal_(0, 0.5)
    moved = deform(feats)
    ref = plain(feats)
    # target level 0 keeps plain convs (its coarser term too); levels >= 1 are deformed
    torch.testing.assert_close(moved[0], ref[0], rtol=0, atol=1e-10)
    assert float((moved[1] - ref[1]).abs().max()) > 1e-3
    sepc = SEPC(4, num_levels=3, num_pconvs=1, deform=True)
    sepc(_pyramid(ODD_2D, dtype=torch.float32))[1].sum().backward()
    assert sepc.pconvs[0].offsets['finer'].conv.weight.grad.abs().sum() > 0


def test_fpn_option_equals_a_neck_list():
    torch.manual_seed(0)
    fpn_cfg = dict(type='FPN', in_channels=[4, 8, 16], out_channels=8, num_outs=4,
                   add_extra_convs='on_input')
    wrapped = SEPC(8, num_levels=4, num_pconvs=2, fpn=fpn_cfg).eval()
    chain = Sequential(FPN([4, 8, 16], 8, 4, add_extra_convs='on_input'),
                       SEPC(8, num_levels=4, num_pconvs=2)).eval()
    state = {k.replace('fpn.', '0.', 1) if k.startswith('fpn.') else '1.' + k: v
             for k, v in wrapped.state_dict().items()}
    chain.load_state_dict(state)
    inputs = [torch.randn(1, c, 16 // 2**i, 12 // 2**i) for i, c in enumerate([4, 8, 16])]
    with torch.no_grad():
        for a, b in zip(wrapped(inputs), chain(inputs)):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize('kwargs, match', [
    (dict(in_channels=[4, 8, 4], num_levels=3), 'equal channel counts'),
    (dict(in_channels=[4, 4], num_levels=3), 'equal channel counts'),
    (dict(in_channels=4, num_levels=1), 'num_levels must be >= 2'),
    (dict(in_channels=0, num_levels=3), 'in_channels must be a positive int'),
    (dict(in_channels=4, num_levels=3, deform=True, spatial_dims=3), 'spatial_dims=2'),
    (dict(in_channels=4, num_levels=3, fpn=dict(type='FPN', in_channels=[4, 8],
                                                 out_channels=4, num_outs=2)), 'fpn gives 2'),
    (dict(in_channels=4, num_levels=3, kernel_size=2), 'odd'),
])
def test_bad_arguments_raise_at_build_time(kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        SEPC(**kwargs)


def test_bad_inputs_raise_clear_errors():
    sepc = SEPC(4, num_levels=3, num_pconvs=1)
    with pytest.raises(ValueError, match='got 2 feature maps'):
        sepc(_pyramid(ODD_2D[:2], dtype=torch.float32))
    with pytest.raises(ValueError, match='ceil'):
        sepc(_pyramid([(8, 8), (3, 4), (2, 2)], dtype=torch.float32))
    with pytest.raises(ValueError, match='channels'):
        sepc(_pyramid(ODD_2D, channels=5, dtype=torch.float32))


def test_retinanet_config_with_the_neck_list_builds_and_runs():
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    cfg = Config.fromfile('configs/detection/retinanet_r18-half_fpn-sepc-lite_1xb8-'
                          '2000i_shapes-160x160.py')
    model = MODELS.build(cfg.model)
    assert isinstance(model.neck[1], SEPC)
    feats = model.extract_feat(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(2, 64, 8, 8), (2, 64, 4, 4), (2, 64, 2, 2),
                                               (2, 64, 1, 1)]
