"""RCNet neck: the cross-scale shift is a hand-checked permutation of channel groups across
levels, gates start at 0.5 / 0.5 and guided upsampling at uniform weights, odd sizes in 2D and
3D, level-count and argument validation, the DCNv2 option."""
from __future__ import annotations

import pytest
import torch

from densekit.errors import ArgumentError
from densekit.layers import LayerFactory
from densekit.necks.rcnet import RCNet, _Gate, _GuidedUpsample


def _inputs(sizes, channels=(8, 16, 32), batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, *s, generator=gen) for c, s in zip(channels, sizes)]


def test_shift_moves_each_group_to_the_hand_listed_levels():
    neck = RCNet([8, 16, 32], 16, num_outs=4, shift_channels=2)  # shifts +1, -1, +2, -2
    levels, channels = 4, 16
    # value = 100 * level + channel, so every entry names where it came from
    stacked = (100 * torch.arange(levels).view(1, levels, 1, 1, 1)
               + torch.arange(channels).view(1, 1, channels, 1, 1)).float().expand(1, -1, -1, 3, 2)
    shifted = neck.csn.shift(stacked)
    assert shifted.shape == (1, levels, 4 * 2, 3, 2)
    # source level of group j (channels 2j, 2j+1) at target level l, written out by hand:
    # shift +1: 0<-3, 1<-0, 2<-1, 3<-2; -1: 0<-1, 1<-2, 2<-3, 3<-0; +2 and -2: 0<-2, 1<-3, ...
    sources = {0: [3, 1, 2, 2], 1: [0, 2, 3, 3], 2: [1, 3, 0, 0], 3: [2, 0, 1, 1]}
    for level, srcs in sources.items():
        for group, src in enumerate(srcs):
            for k in range(2):
                got = shifted[0, level, 2 * group + k]
                assert torch.all(got == 100 * src + 2 * group + k), (level, group, k)
    # a permutation across levels: per shifted channel, the same multiset of values
    for ch in range(8):
        assert sorted(shifted[0, :, ch, 0, 0].tolist()) == sorted(stacked[0, :, ch, 0, 0].tolist())


def test_gates_and_guided_upsampling_start_neutral_even_after_init_weights():
    neck = RCNet([8, 16, 32], 16, num_outs=4)
    neck.init_weights()  # Xavier on the convs must not touch the zero starts
    a, b = torch.randn(2, 16, 5, 3), torch.randn(2, 16, 5, 3)
    gates = [m for m in neck.modules() if isinstance(m, _Gate)]
    assert len(gates) == 3 + 3  # up-gates on P3-P5, down-gates on P4-P6
    for gate in gates:
        torch.testing.assert_close(gate.weight(a, b), torch.full((2, 1, 1, 1), 0.5))
        torch.testing.assert_close(gate(a, b), 0.5 * a + 0.5 * b)
    guided = [m for m in neck.modules() if isinstance(m, _GuidedUpsample)]
    assert len(guided) == 3
    for g in guided:
        torch.testing.assert_close(g(a, b), b)


def test_guided_upsampling_weights_have_mean_one():
    g = _GuidedUpsample(LayerFactory(2), 4).double()
    with torch.no_grad():
        g.conv.weight.normal_()
    lateral = torch.randn(3, 4, 5, 7, dtype=torch.float64)
    ones = torch.ones(3, 4, 5, 7, dtype=torch.float64)
    w = g(lateral, ones)  # the weights themselves, broadcast over the channels
    torch.testing.assert_close(w.mean(dim=(2, 3)), torch.ones(3, 4, dtype=torch.float64))
    assert float(w.std()) > 0.01


@pytest.mark.parametrize('spatial_dims, sizes', [
    (2, [(15, 13), (8, 7), (4, 4)]),
    (3, [(9, 5, 7), (5, 3, 4), (3, 2, 2)]),
])
def test_odd_sizes_keep_the_fpn_contract(spatial_dims, sizes):
    neck = RCNet([8, 16, 32], 16, num_outs=5, spatial_dims=spatial_dims)
    outs = neck(_inputs(sizes))
    want = list(sizes)
    for _ in range(2):
        want.append(tuple(-(-s // 2) for s in want[-1]))
    assert [tuple(o.shape) for o in outs] == [(2, 16, *s) for s in want]
    sum(o.sum() for o in outs).backward()
    assert neck.csn.mixers[4][1].weight.grad.abs().sum() > 0


def test_csn_and_revfp_both_contribute():
    torch.manual_seed(0)
    neck = RCNet([8, 16, 32], 16, num_outs=4).eval()
    feats = _inputs([(8, 8), (4, 4), (2, 2)], batch=1)
    with torch.no_grad():
        rev = neck.revfp(neck.laterals(feats))
        outs = neck(feats)
    for r, o in zip(rev, outs):
        assert r.shape == o.shape
        assert float((o - r).abs().max()) > 1e-4  # the CSN adds something at every level


@pytest.mark.parametrize('kwargs, match', [
    (dict(in_channels=[8, 16, 32], out_channels=16, num_outs=2), 'num_outs=2 must be >='),
    (dict(in_channels=[8], out_channels=16, num_outs=1), 'num_outs=1 must be >='),
    (dict(in_channels=[8, 16], out_channels=16, num_outs=2), r'\|shift\| < num_outs=2'),
    (dict(in_channels=[8, 16, 32], out_channels=16, num_outs=3, csn_level=3), 'csn_level=3'),
    (dict(in_channels=[8, 16, 32], out_channels=8, num_outs=3), 'shift_channels'),
    (dict(in_channels=[8, 16, 32], out_channels=16, num_outs=3, shift_channels=5), 'exceed'),
    (dict(in_channels=[8, 16, 32], out_channels=16, num_outs=3, fusion_conv='dcn'),
     'fusion_conv must be one of'),
    (dict(in_channels=[8, 16, 32], out_channels=16, num_outs=3, fusion_conv='dcnv2',
          spatial_dims=3), 'spatial_dims=2'),
    (dict(in_channels=[], out_channels=16), 'non-empty'),
    (dict(in_channels=[8, 16, 32], out_channels=16, start_level=3), 'start_level=3'),
])
def test_bad_arguments_raise_at_build_time(kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        RCNet(**kwargs)


def test_bad_inputs_raise_clear_errors():
    neck = RCNet([8, 16, 32], 16, num_outs=4)
    with pytest.raises(ValueError, match='got 2 feature maps'):
        neck(_inputs([(8, 8), (4, 4)]))
    with pytest.raises(ValueError, match='ceil'):
        neck(_inputs([(8, 8), (3, 4), (2, 2)]))


def test_dcnv2_fusion_convs_run_with_zero_offsets():
    neck = RCNet([8, 16, 32], 16, num_outs=4, fusion_conv='dcnv2')
    neck.init_weights()
    offsets = [m.conv_offset for m in neck.modules() if hasattr(m, 'conv_offset')]
    assert len(offsets) == 4 + 2  # post on every level, pre on the 2 middle ones
    assert all(float(o.weight.abs().sum()) == 0 for o in offsets)
    outs = neck(_inputs([(9, 7), (5, 4), (3, 2)]))
    assert [tuple(o.shape[2:]) for o in outs] == [(9, 7), (5, 4), (3, 2), (2, 1)]
    sum(o.sum() for o in outs).backward()
    assert offsets[0].weight.grad.abs().sum() > 0
