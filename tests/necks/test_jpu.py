"""densekit.JPU against mmseg's JPU with the same weights, plus 3D, registry and errors."""
import math

import pytest
import torch
from mmdet.registry import MODELS as MMDET_MODELS
from mmseg.models.necks import JPU as PeerJPU
from mmseg.registry import MODELS as MMSEG_MODELS

from densekit.layers import fuse_model, set_fast_eval
from densekit.necks import JPU
from densekit.necks.convert import convert_state_dict
from tests.helpers.numerics import (
    assert_close_to_reference,
    float64_copy,
    randomize_norms_,
    torch_threads,
)

ATOL = RTOL = 1e-5  # |a - b| <= 1e-5 + 1e-5 |b|
CHANNELS = (6, 8, 12)

@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    with torch_threads(1):
        yield


def pyramid(batch, size, channels=CHANNELS, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, *[math.ceil(s / 2 ** i) for s in size], generator=gen)
            for i, c in enumerate(channels)]


def build_pair(**cfg):
    torch.manual_seed(0)
    peer = randomize_norms_(PeerJPU(in_channels=CHANNELS, mid_channels=4, **cfg))
    ours = JPU(in_channels=CHANNELS, mid_channels=4, **cfg)
    ours.load_state_dict(peer.state_dict())  # peer keys are converted on load
    return ours, peer


def assert_same(outs, refs, atol=ATOL):
    assert len(outs) == len(refs)
    for o, r in zip(outs, refs):
        torch.testing.assert_close(o, r, atol=atol, rtol=RTOL)


@pytest.mark.parametrize('cfg', [
    dict(),
    dict(start_level=1, dilations=(1, 3)),
    dict(end_level=2, align_corners=True),
    dict(norm_cfg=dict(type='GN', num_groups=2), act_cfg=dict(type='LeakyReLU')),
], ids=['default', 'start1', 'end2-align', 'gn-leaky'])
@pytest.mark.parametrize('batch, size', [(1, (97, 131)), (2, (32, 40))])
def test_jpu_matches_mmseg_eval_and_train(cfg, batch, size):
    ours, peer = build_pair(**cfg)
    feats = pyramid(batch, size)
    with torch.no_grad():
        refs = peer.eval()(feats)
        assert_same(ours.eval()(feats), refs)
        assert_same(set_fast_eval(ours, False)(feats), refs)
    set_fast_eval(ours, True)
    ins = [f.clone().requires_grad_() for f in feats]
    ref_ins = [f.clone().requires_grad_() for f in feats]
    ins64, peer64 = float64_copy(ref_ins), float64_copy(peer)
    outs, refs = ours.train()(ins), peer.train()(ref_ins)
    refs64 = peer64.train()(ins64)
    assert_same(outs, refs)
    weight = torch.randn_like(refs[-1])
    (outs[-1] * weight).sum().backward()
    (refs[-1] * weight).sum().backward()
    (refs64[-1] * weight.double()).sum().backward()
    for a, b, r in zip(ins, ref_ins, ins64):
        if b.grad is not None:  # sums over the map: torch's own error vs float64 is the scale
            assert_close_to_reference(a.grad, b.grad, r.grad, what='input grad')


def test_jpu_deploy_fuse_matches_peer():
    ours, peer = build_pair()
    feats = pyramid(2, (24, 20))
    with torch.no_grad():
        refs = peer.eval()(feats)
        fused = fuse_model(ours)
        assert not any('.bn.' in key for key in fused.state_dict())
        assert_same(fused(feats), refs)


def test_jpu_key_conversion_is_explicit_and_idempotent():
    ours, peer = build_pair()
    converted = convert_state_dict(peer.state_dict(), 'mmseg.JPU')
    assert list(converted) == list(ours.state_dict())
    assert list(convert_state_dict(converted, 'mmseg.JPU')) == list(converted)


@pytest.mark.parametrize('dilations', [(1, 2), ((1, 2, 2), (2, 4, 4))])
def test_jpu_3d_shapes_and_gradients(dilations):
    torch.manual_seed(0)
    jpu = JPU(in_channels=(4, 6, 8), mid_channels=3, dilations=dilations, spatial_dims=3)
    feats = [f.requires_grad_() for f in pyramid(2, (8, 12, 10), (4, 6, 8))]
    outs = jpu(feats)
    assert [tuple(o.shape) for o in outs] == [(2, 4, 8, 12, 10), (2, 6, 4, 6, 5),
                                              (2, 3 * len(dilations), 8, 12, 10)]
    outs[-1].square().mean().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)
    with torch.no_grad():
        randomize_norms_(jpu).eval()
        assert_same(jpu(feats), set_fast_eval(jpu, False)(feats))


@pytest.mark.parametrize('registry', [MMSEG_MODELS, MMDET_MODELS], ids=['mmseg', 'mmdet'])
def test_jpu_builds_from_any_scope(registry):
    jpu = registry.build(dict(type='densekit.JPU', in_channels=(4, 6), mid_channels=2,
                              dilations=(1, 2)))
    assert isinstance(jpu, JPU)
    assert jpu(pyramid(1, (8, 8), (4, 6)))[-1].shape == (1, 4, 8, 8)


@pytest.mark.parametrize('kwargs, match', [
    (dict(end_level=4), 'end_level=4'),
    (dict(start_level=3), 'start_level=3'),
    (dict(dilations=()), 'dilations'),
    (dict(dilations=(1, (2, 2, 2))), 'dilations item'),
    (dict(norm_cfg=dict(type='GN', num_groups=5)), 'num_groups=5 does not divide'),
    (dict(in_channels=(6, 0)), 'in_channels'),
])
def test_jpu_bad_config_raises_at_build(kwargs, match):
    kwargs = {'in_channels': CHANNELS, 'mid_channels': 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        JPU(**kwargs)


def test_jpu_wrong_feature_count_raises():
    jpu = JPU(in_channels=CHANNELS, mid_channels=4)
    with pytest.raises(ValueError, match='got 2 feature maps but in_channels lists 3'):
        jpu(pyramid(1, (16, 16), CHANNELS[:2]))
