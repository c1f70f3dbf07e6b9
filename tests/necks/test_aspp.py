"""densekit.ASPP / densekit.ASPPHead against mmseg's ASPPHead (and DepthwiseSeparableASPPHead)
with the same weights, plus 3D, registry and errors."""
import pytest
import torch
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.structures import PixelData
from mmseg.models.decode_heads import ASPPHead as PeerASPPHead
from mmseg.models.decode_heads import DepthwiseSeparableASPPHead as PeerSepASPPHead
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.structures import SegDataSample

from densekit.accel import taps
from densekit.heads import ASPPHead
from densekit.layers import set_fast_eval
from densekit.necks import ASPP
from tests.helpers.numerics import (
    assert_close_to_reference,
    float64_copy,
    randomize_norms_,
    torch_threads,
)

ATOL = RTOL = 1e-5  # |a - b| <= 1e-5 + 1e-5 |b|
IN, CH = 12, 6

@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    with torch_threads(1):
        yield


def peer_head(separable=False, **cfg):
    torch.manual_seed(0)
    if separable:
        head = PeerSepASPPHead(c1_in_channels=0, c1_channels=0, in_channels=IN, channels=CH,
                               num_classes=3, **cfg)
    else:
        head = PeerASPPHead(in_channels=IN, channels=CH, num_classes=3, **cfg)
    return randomize_norms_(head)


def features(batch, size, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 4, 8, 8, generator=gen),
            torch.randn(batch, IN, *size, generator=gen)]


NECK_CASES = [
    dict(dilations=(1, 12, 24, 36), norm_cfg=dict(type='BN')),
    dict(dilations=(1, 2, 3), norm_cfg=dict(type='GN', num_groups=3), separable=True),
    dict(dilations=(2, 6), norm_cfg=None, act_cfg=dict(type='LeakyReLU')),
]


@pytest.mark.parametrize('cfg', NECK_CASES, ids=['bn-deeplab', 'gn-separable', 'nonorm'])
@pytest.mark.parametrize('batch, size', [(1, (97, 131)), (2, (33, 47)), (2, (12, 10))])
def test_aspp_neck_matches_mmseg_aspp_part(cfg, batch, size, monkeypatch):
    monkeypatch.setattr(taps, 'SKIP_MIN_MACS', 0)  # small test convs take the tap-skipping path too
    cfg = dict(cfg)
    separable = cfg.pop('separable', False)
    peer = peer_head(separable, **cfg)
    neck = ASPP(IN, CH, separable=separable, **cfg)
    neck.load_state_dict(peer.state_dict())  # classifier dropped, image_pool.1 renamed
    feats = features(batch, size)
    with torch.no_grad():
        ref = peer.eval()._forward_feature(feats)
        outs = neck.eval()(feats)
        assert outs[0] is feats[0]
        torch.testing.assert_close(outs[1], ref, atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(set_fast_eval(neck, False)(feats)[1], ref, atol=ATOL, rtol=RTOL)
    set_fast_eval(neck, True)
    if batch == 1 and cfg['norm_cfg'] is not None and cfg['norm_cfg']['type'] == 'BN':
        return  # training BN on the 1x1 pooled branch needs batch > 1 (as in mmseg)
    peer64 = float64_copy(peer)
    x = feats[1].clone().requires_grad_()
    x_ref = feats[1].clone().requires_grad_()
    x64 = float64_copy(x_ref)
    out, ref = neck.train()([feats[0], x])[1], peer.train()._forward_feature([feats[0], x_ref])
    ref64 = peer64.train()._forward_feature([feats[0].double(), x64])
    assert_close_to_reference(out, ref, ref64, what='train forward')
    weight = torch.randn_like(ref)
    (out * weight).sum().backward()
    (ref * weight).sum().backward()
    (ref64 * weight.double()).sum().backward()
    # gradients sum over the whole map: judged against torch's own error vs float64
    assert_close_to_reference(x.grad, x_ref.grad, x64.grad, what='input grad')
    names = [n.replace('image_pool.1.', 'image_pool.') for n, _ in peer.named_parameters()]
    peer_grads = dict(zip(names, (p.grad for p in peer.parameters())))
    peer64_grads = dict(zip(names, (p.grad for p in peer64.parameters())))
    for name, p in neck.named_parameters():
        assert_close_to_reference(p.grad, peer_grads[name], peer64_grads[name], what=name)


@pytest.mark.parametrize('separable', [False, True])
def test_aspp_head_end_to_end(separable):
    cfg = dict(dilations=(1, 12, 24, 36), norm_cfg=dict(type='BN'), dropout_ratio=0.1,
               in_index=1, align_corners=False)
    peer = peer_head(separable, **cfg)
    ours = ASPPHead(in_channels=IN, channels=CH, num_classes=3, separable=separable, **cfg)
    if separable:  # the DeepLabv3+ decoder is not part of densekit's ASPPHead
        state = {k: v for k, v in peer.state_dict().items() if 'sep_bottleneck' not in k}
        ours.load_state_dict(state)
        return
    ours.load_state_dict(peer.state_dict())
    feats = features(2, (45, 61))
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(feats), peer.eval()(feats), atol=ATOL, rtol=RTOL)
    # training loss through mmseg's loss_by_feat, same dropout mask (same RNG draws)
    samples = []
    for i in range(2):
        sample = SegDataSample()
        label = torch.randint(0, 3, (1, 90, 122), generator=torch.Generator().manual_seed(i))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    torch.manual_seed(1)
    loss = ours.train().loss(feats, samples, None)
    torch.manual_seed(1)
    ref = peer.train().loss(feats, samples, None)
    torch.testing.assert_close(loss['loss_ce'], ref['loss_ce'], atol=ATOL, rtol=RTOL)


def test_aspp_head_keys_map_to_mmseg():
    peer = peer_head(dilations=(1, 2), norm_cfg=dict(type='BN'))
    ours = ASPPHead(in_channels=IN, channels=CH, num_classes=3, dilations=(1, 2),
                    norm_cfg=dict(type='BN'))
    result = ours.load_state_dict(peer.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    ours.load_state_dict(ours.state_dict())  # densekit's own keys load unchanged


@pytest.mark.parametrize('separable', [False, True])
def test_aspp_3d_shapes_and_gradients(separable):
    torch.manual_seed(0)
    neck = ASPP([4, 8], 5, dilations=(1, (1, 4, 4), 6), separable=separable,
                norm_cfg=dict(type='GN', num_groups=1), spatial_dims=3)
    feats = [torch.randn(2, 4, 12, 16, 16), torch.randn(2, 8, 6, 9, 7, requires_grad=True)]
    outs = neck(feats)
    assert outs[1].shape == (2, 5, 6, 9, 7)
    outs[1].square().mean().backward()
    assert feats[1].grad.abs().sum() > 0
    assert all(p.grad is not None for p in neck.parameters())


@pytest.mark.parametrize('registry', [MMSEG_MODELS, MMDET_MODELS], ids=['mmseg', 'mmdet'])
def test_aspp_builds_from_any_scope(registry):
    neck = registry.build(dict(type='densekit.ASPP', in_channels=8, channels=4,
                               dilations=(1, 2)))
    head = registry.build(dict(type='densekit.ASPPHead', in_channels=8, channels=4,
                               num_classes=2, out_channels=1, dilations=(1, 2)))
    assert isinstance(neck, ASPP) and isinstance(head, ASPPHead)
    x = [torch.randn(2, 8, 9, 9)]
    assert neck(x)[0].shape == (2, 4, 9, 9) and head(x).shape == (2, 1, 9, 9)


@pytest.mark.parametrize('kwargs, match', [
    (dict(dilations=()), 'dilations'),
    (dict(dilations=[1, (2, 2, 2)]), 'dilations item'),
    (dict(dilations=(1, 0)), 'dilations item'),
    (dict(norm_cfg=dict(type='GN', num_groups=4)), 'num_groups=4 does not divide'),
    (dict(in_channels=[4, 8], in_index=2), 'in_index=2'),
    (dict(channels=0), 'channels'),
    (dict(spatial_dims=4), 'spatial_dims'),
])
def test_aspp_bad_config_raises_at_build(kwargs, match):
    kwargs = {'in_channels': 8, 'channels': 6, **kwargs}
    with pytest.raises(ValueError, match=match):
        ASPP(**kwargs)


def test_aspp_bad_inputs_raise():
    neck = ASPP([4, 8], 6, dilations=(1, 2))
    with pytest.raises(ValueError, match='got 1 feature maps but in_channels lists 2'):
        neck([torch.randn(1, 8, 5, 5)])
    with pytest.raises(ValueError, match='NCHW'):
        neck([torch.randn(1, 4, 5, 5), torch.randn(1, 8, 5, 5, 5)])
    with pytest.raises(ValueError, match='in_channels'):
        ASPPHead(in_channels=[4, 8], in_index=[0, 1], channels=4, num_classes=2,
                 input_transform='multiple_select')
