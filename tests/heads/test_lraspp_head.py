"""densekit.LRASPPHead against mmseg's LRASPPHead (same arguments, state dict and outputs), its
clamped context pooling, and the same head on volumes."""
from __future__ import annotations

import pytest
import torch
from mmseg.models.decode_heads import LRASPPHead as MMSegLRASPPHead
from torch import nn

from densekit.heads import ContextPool, LRASPPHead
from tests.helpers.numerics import randomize_norms_

CFG = dict(in_channels=(16, 24, 40), in_index=(0, 1, 2), channels=32, num_classes=5,
           branch_channels=(8, 12), input_transform='multiple_select',
           norm_cfg=dict(type='BN'), act_cfg=dict(type='ReLU'), align_corners=False,
           dropout_ratio=0.0)


def _pair(**overrides):
    cfg = {**CFG, **overrides}
    torch.manual_seed(0)
    theirs = MMSegLRASPPHead(**cfg)
    randomize_norms_(theirs)
    ours = LRASPPHead(**cfg)
    ours.load_state_dict(theirs.state_dict(), strict=True)  # mmseg's keys load as they are
    return ours, theirs


def _feats(batch: int, sizes, gen_seed: int = 0, channels=(16, 24, 40)):
    gen = torch.Generator().manual_seed(gen_seed)
    return [torch.randn(batch, c, *s, generator=gen) for c, s in zip(channels, sizes)]


# odd sizes; the deepest level at least 49 pixels a side, where mmseg's AvgPool2d(49) runs
SIZES = [((113, 131), (113, 131), (57, 66)), ((99, 101), (50, 51), (50, 51))]


@pytest.mark.parametrize('sizes', SIZES)
@pytest.mark.parametrize('batch', [1, 2])
def test_matches_mmseg_in_eval_and_train(sizes, batch):
    ours, theirs = _pair()
    assert set(ours.state_dict()) == set(theirs.state_dict())
    feats = _feats(batch, sizes)
    for train in (False, True):
        ours.train(train)
        theirs.train(train)
        leaves_a = [f.clone().requires_grad_() for f in feats]
        leaves_b = [f.clone().requires_grad_() for f in feats]
        out_a, out_b = ours(leaves_a), theirs(leaves_b)
        assert out_a.shape == (batch, 5, *sizes[0])
        torch.testing.assert_close(out_a, out_b, atol=1e-5, rtol=1e-5)
        if train:
            weights = torch.randn(out_a.shape, generator=torch.Generator().manual_seed(3))
            (out_a * weights).sum().backward()
            (out_b * weights).sum().backward()
            for a, b in zip(leaves_a, leaves_b):
                torch.testing.assert_close(a.grad, b.grad, atol=1e-4, rtol=1e-4)
            grads_b = dict(theirs.named_parameters())
            for name, p in ours.named_parameters():
                torch.testing.assert_close(p.grad, grads_b[name].grad, atol=1e-4, rtol=1e-4,
                                           msg=name)


def test_small_maps_raise_like_mmseg_or_pool_the_whole_axis_when_asked():
    ours, theirs = _pair()
    feats = _feats(2, ((33, 41), (17, 21), (9, 11)))
    with pytest.raises(RuntimeError):
        theirs.eval()(feats)
    with pytest.raises(RuntimeError, match='pool_kernel=None'):  # also a ValueError
        ours.eval()(feats)
    with pytest.raises(ValueError):
        ours(feats)
    ours = LRASPPHead(**CFG, clamp_pool=True).eval()
    ours.load_state_dict(theirs.state_dict())
    out = ours(feats)
    glob = LRASPPHead(**CFG, pool_kernel=None).eval()
    glob.load_state_dict(ours.state_dict())
    # the clamped 49-pixel window covers the whole 9x11 map: a global average
    torch.testing.assert_close(out, glob(feats), atol=1e-6, rtol=1e-6)


def test_context_pool_equals_avg_pool_where_the_window_fits():
    x = torch.randn(2, 3, 70, 90)
    torch.testing.assert_close(ContextPool(49, (16, 20))(x),
                               nn.AvgPool2d(49, stride=(16, 20))(x))
    assert ContextPool(None)(x).shape == (2, 3, 1, 1)
    # a window covering one axis whole: that axis is averaged, the other pooled
    tall = torch.randn(2, 3, 30, 90)
    torch.testing.assert_close(ContextPool(49, (16, 20), clamp=True)(tall),
                               nn.AvgPool2d((30, 49), stride=(16, 20))(tall))
    with pytest.raises(ValueError, match='pool_kernel'):
        ContextPool(0)


def test_volumes_reduce_to_the_image_head_at_depth_one():
    """A 3D head with the 2D head's weights (unsqueezed) on depth-1 volumes gives its output."""
    ours, _ = _pair()
    head3d = LRASPPHead(**CFG, spatial_dims=3, pool_stride=(1, 16, 20), clamp_pool=True)
    state = {k: (v.unsqueeze(2) if k.endswith('weight') and v.dim() == 4 else v)
             for k, v in ours.state_dict().items()}
    head3d.load_state_dict(state, strict=True)
    ours.eval()
    head3d.eval()
    feats = _feats(2, SIZES[0])
    out2d = ours(feats)
    out3d = head3d([f.unsqueeze(2) for f in feats])
    assert out3d.shape == (2, 5, 1, *SIZES[0][0])
    torch.testing.assert_close(out3d.squeeze(2), out2d, atol=1e-5, rtol=1e-5)
    # and a real volume trains: logits at the shallowest level's size, gradients everywhere
    head3d.train()
    vol = _feats(1, ((9, 10, 11), (5, 5, 6), (3, 3, 3)))
    out = head3d(vol)
    assert out.shape == (1, 5, 9, 10, 11)
    out.square().mean().backward()
    assert all(p.grad is not None for p in head3d.parameters())


@pytest.mark.parametrize('kwargs,words', [
    (dict(input_transform='resize_concat'), 'input_transform'),
    (dict(branch_channels=(8,)), 'branch_channels'),
    (dict(branch_channels=64), 'branch_channels'),  # mmseg's test expects its assert here
    (dict(branch_channels=(8, 0)), 'branch_channels'),
    (dict(pool_kernel=(49, 49, 49)), 'pool_kernel'),
    (dict(spatial_dims=4), 'spatial_dims'),
])
def test_bad_arguments_name_themselves(kwargs, words):
    with pytest.raises(ValueError, match=words):
        LRASPPHead(**{**CFG, **kwargs})
    if 'branch_channels' in kwargs:  # where mmseg asserts, the error is also AssertionError
        with pytest.raises(AssertionError):
            LRASPPHead(**{**CFG, **kwargs})


def test_bad_inputs_are_named_before_forward_runs():
    head = LRASPPHead(**CFG, pool_kernel=None).eval()
    feats = _feats(1, SIZES[0])
    with pytest.raises(TypeError, match='list or tuple'):
        head(feats[0])
    with pytest.raises(ValueError, match='in_index'):
        head(feats[:2])
    with pytest.raises(ValueError, match=r'in_channels\[1\] is 24'):
        head([feats[0], feats[0], feats[2]])
    with pytest.raises(ValueError, match='4D'):
        head([f.unsqueeze(2) for f in feats])
