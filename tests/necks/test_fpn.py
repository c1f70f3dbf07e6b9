"""densekit.FPN against mmdet's FPN with the same weights (2D), plus 3D, registry and errors."""
import math

import pytest
import torch
from mmdet.models.necks import FPN as PeerFPN
from mmdet.registry import MODELS as MMDET_MODELS
from mmseg.registry import MODELS as MMSEG_MODELS

from densekit.layers import set_fast_eval
from densekit.necks import FPN
from densekit.registry import MODELS
from tests.helpers.numerics import (
    assert_close_to_reference,
    float64_copy,
    randomize_norms_,
    torch_threads,
)

ATOL = RTOL = 1e-5  # |a - b| <= 1e-5 + 1e-5 |b|
CHANNELS = [4, 6, 8, 10]

@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    with torch_threads(1):
        yield


def pyramid(batch, size, channels=CHANNELS, seed=0):
    gen = torch.Generator().manual_seed(seed)
    feats = []
    for i, c in enumerate(channels):
        shape = [math.ceil(s / 2 ** i) for s in size]
        feats.append(torch.randn(batch, c, *shape, generator=gen))
    return feats


def build_pair(**cfg):
    torch.manual_seed(0)
    peer = randomize_norms_(PeerFPN(CHANNELS, 8, **cfg))
    ours = FPN(CHANNELS, 8, **cfg)
    ours.load_state_dict(peer.state_dict())
    return ours, peer


def assert_same(outs, refs, atol=ATOL):
    assert len(outs) == len(refs)
    for o, r in zip(outs, refs):
        torch.testing.assert_close(o, r, atol=atol, rtol=RTOL)


CONFIGS = [
    dict(num_outs=5),
    dict(num_outs=5, add_extra_convs='on_input', start_level=1),
    dict(num_outs=6, add_extra_convs=True, relu_before_extra_convs=True),
    dict(num_outs=5, add_extra_convs='on_lateral', norm_cfg=dict(type='BN'),
         act_cfg=dict(type='ReLU')),
    dict(num_outs=6, add_extra_convs='on_output', start_level=1,
         norm_cfg=dict(type='GN', num_groups=2), no_norm_on_lateral=True),
    dict(num_outs=2, start_level=1, end_level=2, norm_cfg=dict(type='BN')),
    dict(num_outs=4, upsample_cfg=dict(mode='bilinear', align_corners=False)),
    dict(num_outs=4, upsample_cfg=dict(scale_factor=2, mode='nearest')),
]


@pytest.mark.parametrize('cfg', CONFIGS, ids=lambda c: '-'.join(f'{k}' for k in c.items()))
@pytest.mark.parametrize('batch, size', [(1, (97, 131)), (2, (64, 64))])
def test_fpn_matches_mmdet_eval_and_train(cfg, batch, size):
    if 'scale_factor' in cfg.get('upsample_cfg', {}) and size != (64, 64):
        pytest.skip('a fixed scale factor needs power-of-two pyramids (as in mmdet)')
    ours, peer = build_pair(**cfg)
    feats = pyramid(batch, size)
    ours.eval(), peer.eval()
    with torch.no_grad():
        refs = peer(feats)
        assert_same(ours(feats), refs)          # fast path (folded BN, in-place adds)
        assert_same(set_fast_eval(ours, False)(feats), refs)
    set_fast_eval(ours, True)
    ours.train(), peer.train()
    ins = [f.clone().requires_grad_() for f in feats]
    ref_ins = [f.clone().requires_grad_() for f in feats]
    ins64, peer64 = float64_copy(ref_ins), float64_copy(peer)
    outs, refs, refs64 = ours(ins), peer(ref_ins), peer64(ins64)
    assert_same(outs, refs)
    weights = [torch.randn_like(r) for r in refs]
    sum((o * w).sum() for o, w in zip(outs, weights)).backward()
    sum((r * w).sum() for r, w in zip(refs, weights)).backward()
    sum((r * w.double()).sum() for r, w in zip(refs64, weights)).backward()
    # gradients sum over whole maps: judged against torch's own error vs float64
    for a, b, r in zip(ins, ref_ins, ins64):
        if b.grad is not None:
            assert_close_to_reference(a.grad, b.grad, r.grad, what='input grad')
    peer_grads = dict(peer.named_parameters())
    peer64_grads = dict(peer64.named_parameters())
    for name, p in ours.named_parameters():
        assert_close_to_reference(p.grad, peer_grads[name].grad, peer64_grads[name].grad,
                                  what=name)


@pytest.mark.parametrize('add_extra_convs', [False, 'on_input', 'on_output'])
def test_fpn_3d_shapes_and_gradients(add_extra_convs):
    torch.manual_seed(0)
    fpn = FPN([4, 8, 12], 6, num_outs=4, add_extra_convs=add_extra_convs,
              norm_cfg=dict(type='GN', num_groups=3), act_cfg=dict(type='ReLU'),
              spatial_dims=3)
    feats = [f.requires_grad_() for f in pyramid(2, (9, 16, 13), [4, 8, 12])]
    outs = fpn(feats)
    expected = [(9, 16, 13), (5, 8, 7), (3, 4, 4), (2, 2, 2)]
    assert [tuple(o.shape) for o in outs] == [(2, 6, *s) for s in expected]
    sum(o.sum() for o in outs).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)
    assert all(p.grad is not None for p in fpn.parameters())
    with torch.no_grad():
        fpn.eval()
        assert_same(fpn(feats), set_fast_eval(fpn, False)(feats))


@pytest.mark.parametrize('registry', [MMDET_MODELS, MMSEG_MODELS, MODELS],
                         ids=['mmdet', 'mmseg', 'densekit'])
def test_fpn_builds_from_any_scope(registry):
    fpn = registry.build(dict(type='densekit.FPN', in_channels=[4, 6], out_channels=4,
                              num_outs=3, spatial_dims=3))
    assert isinstance(fpn, FPN) and fpn.spatial_dims == 3
    assert len(fpn(pyramid(1, (8, 8, 8), [4, 6]))) == 3


def test_fpn_peer_checkpoint_through_mmengine(tmp_path):
    from mmengine.runner.checkpoint import load_checkpoint

    ours, peer = build_pair(num_outs=5, norm_cfg=dict(type='BN'))
    torch.save({'state_dict': peer.state_dict()}, tmp_path / 'fpn.pth')
    fresh = FPN(CHANNELS, 8, num_outs=5, norm_cfg=dict(type='BN'))
    load_checkpoint(fresh, str(tmp_path / 'fpn.pth'), strict=True)
    feats = pyramid(1, (32, 32))
    with torch.no_grad():
        assert_same(fresh.eval()(feats), peer.eval()(feats))


@pytest.mark.parametrize('kwargs, match', [
    (dict(in_channels=[4, 6], num_outs=1), 'num_outs=1'),
    (dict(in_channels=[4, 6, 8], num_outs=3, end_level=1), 'num_outs=3 must equal'),
    (dict(in_channels=[4, 6], num_outs=2, end_level=5), 'end_level=5'),
    (dict(in_channels=[4, 6], num_outs=2, start_level=2), 'start_level=2'),
    (dict(in_channels=[4, 6], num_outs=3, add_extra_convs='on_top'), 'add_extra_convs'),
    (dict(in_channels=[4, 6], num_outs=2, norm_cfg=dict(type='GN', num_groups=4)),
     'norm_cfg: num_groups=4 does not divide'),
    (dict(in_channels=[4, 6], num_outs=2, spatial_dims=1), 'spatial_dims'),
    (dict(in_channels=4, num_outs=2), 'in_channels'),
])
def test_fpn_bad_config_raises_at_build(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FPN(out_channels=6, **kwargs)


def test_fpn_bad_inputs_raise():
    fpn = FPN([4, 6], 4, num_outs=2)
    with pytest.raises(ValueError, match='got 3 feature maps but in_channels lists 2'):
        fpn(pyramid(1, (16, 16), [4, 6, 8]))
    with pytest.raises(ValueError, match='4D NCHW'):
        fpn(pyramid(1, (8, 8, 8), [4, 6]))


@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_fpn_traces_for_flop_counting_and_jit(mode):
    """The fast upsample-add is a custom autograd Function; traces must see plain ops."""
    from mmengine.analysis import FlopAnalyzer

    ours, peer = build_pair(num_outs=5)
    getattr(ours, mode)()
    getattr(peer, mode)()
    feats = pyramid(1, (40, 56))
    assert FlopAnalyzer(ours, (feats,)).total() == FlopAnalyzer(peer, (feats,)).total() > 0
    traced = torch.jit.trace(ours, (feats,), check_trace=False)
    with torch.no_grad():
        assert_same(traced(feats), peer(feats))
