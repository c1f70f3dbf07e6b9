"""D-Former encoder: token grouping, padding of odd sizes, pyramid shapes, training, errors."""
from __future__ import annotations

import math

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.structures import BaseDataElement

import densekit  # noqa: F401
from densekit.tasks.medical3d.dformer import (
    DFormerBlock,
    DFormerEncoder,
    merge_groups,
    partition_groups,
)
from tests.conftest import REPO

CONFIG = REPO / 'configs' / 'medical3d' / 'dformer-tiny_1xb2-600i_phantoms-48x48x48.py'


@pytest.mark.parametrize('dilated', [False, True])
def test_grouping_partitions_the_tokens_exactly(dilated):
    grid, window = (8, 6, 4), (4, 2, 2)
    index = torch.arange(2 * math.prod(grid)).reshape(2, *grid, 1)
    groups = partition_groups(index, window, dilated)
    counts = [g // w for g, w in zip(grid, window)]
    assert groups.shape == (2 * math.prod(counts), math.prod(window), 1)
    # every token in exactly one group, and the inverse restores the grid
    assert torch.equal(groups.flatten().sort().values, index.flatten())
    assert torch.equal(merge_groups(groups, window, grid, dilated), index)
    coords = torch.stack(torch.meshgrid(*[torch.arange(g) for g in grid], indexing='ij'), -1)
    member_coords = partition_groups(coords[None], window, dilated)  # (groups, tokens, 3)
    for axis, (count, size) in enumerate(zip(counts, window)):
        values = member_coords[..., axis]
        if dilated:  # the same residue modulo the group count, spread over the whole axis
            assert (values % count == values[:, :1] % count).all()
            assert int((values.max(1).values - values.min(1).values).min()) == (size - 1) * count
        else:  # contiguous blocks of the window size
            assert (values // size == values[:, :1] // size).all()


def test_local_and_global_groups_differ_and_attention_stays_inside():
    torch.manual_seed(0)
    for dilated in (False, True):
        block = DFormerBlock(8, 2, (2, 2, 2), dilated=dilated).double()
        x = torch.randn(1, 4, 4, 4, 8, dtype=torch.float64)
        base = block(x)
        y = x.clone()
        y[0, 0, 0, 0] += torch.randn(8, dtype=torch.float64)  # perturb one token
        changed = (block(y) - base).abs().sum(-1)[0] > 1e-12
        expected = torch.zeros(4, 4, 4, dtype=torch.bool)
        if dilated:
            expected[::2, ::2, ::2] = True  # its dilated group (dilation 2)
        else:
            expected[:2, :2, :2] = True  # its local window
        assert torch.equal(changed, expected)


def test_padded_tokens_are_masked_out():
    """A grid of 5 along D is padded to 8 (two groups of 4): each group's result equals the
    block run on that group's real tokens alone, so padding takes no part in attention."""
    torch.manual_seed(0)
    x = torch.randn(1, 5, 4, 4, 8, dtype=torch.float64)
    for dilated, groups in ((False, ([0, 1, 2, 3], [4])), (True, ([0, 2, 4], [1, 3]))):
        block = DFormerBlock(8, 2, (4, 4, 4), dilated=dilated).double()
        out = block(x)
        for members in groups:
            # alone, the members fit in one group (the window is clipped to the grid)
            assert torch.allclose(out[:, members], block(x[:, members]), atol=1e-10)


@pytest.mark.parametrize('size', [(17, 20, 9), (16, 16, 16), (5, 7, 3)])
def test_pyramid_shapes_on_odd_sizes(size):
    torch.manual_seed(0)
    enc = DFormerEncoder(2, arch='tiny')
    feats = enc(torch.randn(1, 2, *size))
    assert enc.out_channels == [8, 16, 32, 64]
    assert enc.out_strides == [(1, 1, 1), (2, 2, 2), (4, 4, 4), (8, 8, 8)]
    assert [tuple(f.shape) for f in feats] == [
        (1, c, *[math.ceil(s / t) for s, t in zip(size, stride)])
        for c, stride in zip(enc.out_channels, enc.out_strides)]


def test_base_preset_and_2d():
    enc = DFormerEncoder(1, arch='base')
    assert enc.dims == [96, 192, 384, 768] and enc.depths == [2, 2, 6, 2]
    assert enc.num_heads == [3, 6, 12, 24] and enc.window_size == (2, 8, 8)
    assert enc.out_strides == [(1, 1, 1), (2, 2, 2), (2, 4, 4), (4, 8, 8), (8, 16, 16),
                               (16, 32, 32)]
    assert enc.out_channels == [24, 48, 96, 192, 384, 768]
    assert 28e6 < sum(p.numel() for p in enc.parameters()) < 31e6
    flat = DFormerEncoder(1, arch='tiny', spatial_dims=2)
    assert [tuple(f.shape) for f in flat(torch.randn(1, 1, 33, 31))] == [
        (1, 8, 33, 31), (1, 16, 17, 16), (1, 32, 9, 8), (1, 64, 5, 4)]


def test_build_errors():
    with pytest.raises(ValueError, match='window_size'):
        DFormerEncoder(1, window_size=0)
    with pytest.raises(ValueError, match='window_size'):
        DFormerEncoder(1, window_size=(4, 4))
    with pytest.raises(ValueError, match='window_size'):
        DFormerEncoder(1, window_size=(2, 8, 8), spatial_dims=2)
    with pytest.raises(TypeError, match='window_size'):
        DFormerEncoder(1, window_size=2.5)
    with pytest.raises(ValueError, match='spatial_dims'):
        DFormerEncoder(1, spatial_dims=4)
    with pytest.raises(ValueError, match='patch_size'):
        DFormerEncoder(1, patch_size=3)
    with pytest.raises(ValueError, match=r'num_heads\[1\]=3'):
        DFormerEncoder(1, num_heads=[1, 3, 4])
    with pytest.raises(ValueError, match='depths'):
        DFormerEncoder(1, depths=[2, 2])
    with pytest.raises(ValueError, match='arch'):
        DFormerEncoder(1, arch='huge')
    with pytest.raises(ValueError, match='stem_channels'):
        DFormerEncoder(1, stem_channels=[8, 8])
    with pytest.raises(ValueError, match='expects'):
        DFormerEncoder(2)(torch.zeros(1, 1, 8, 8, 8))


def test_config_trains_a_step_in_the_segmentor():
    cfg = Config.fromfile(str(CONFIG))
    assert cfg.model.backbone.type == 'DFormerEncoder' and cfg.data_root == 'data/phantoms'
    cfg.model.test_cfg.roi_size = (16, 16, 16)
    init_default_scope('densekit')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    x = torch.randn(2, 2, 16, 16, 16)
    target = (x[:, 0] > 0.3).long() + (x[:, 1] > 1.2).long()
    samples = [BaseDataElement(gt_seg=t) for t in target]
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        parts = model(x, samples, mode='loss')
        loss = sum(parts.values())
        optim.zero_grad()
        loss.backward()
        assert all(torch.isfinite(v) for v in parts.values())
        missing = [n for n, p in model.named_parameters()
                   if p.grad is None or not torch.isfinite(p.grad).all()]
        # every parameter learns but the coarsest deep-supervision head (loss weight 0)
        assert missing == ['decode_head.seg_heads.2.weight', 'decode_head.seg_heads.2.bias']
        assert all(float(p.grad.abs().sum()) > 0 for p in model.backbone.parameters())
        optim.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    labels = model.eval().predict_volume(torch.randn(2, 19, 17, 16))
    assert labels.shape == (19, 17, 16)
