"""CATANet (densekit.CATANetBody + CATANetHead): parameter counts, shapes on odd sizes, token
centres (EMA in training only, saved and loaded), token grouping against a direct reference,
LRSA patches, batch independence in eval, argument errors, CPU gate."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope

import densekit  # noqa: F401  (registers everything)
from densekit.backbones.catanet import (
    CATANetBody,
    LocalRegionSelfAttention,
    TokenAggregationBlock,
    mirror_index,
    patch_starts,
    restore_order,
    sort_tokens,
)
from densekit.errors import ArgumentError
from densekit.heads import CATANetHead
from densekit.registry import MODELS

REPO = Path(__file__).resolve().parents[2]
TINY = dict(dim=8, qk_dim=8, num_heads=2, hidden_dim=8, num_centres=(4, 3),
            group_sizes=(16, 8), patch_sizes=(6, 8))


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _tab(**kw: object) -> TokenAggregationBlock:
    args = dict(dim=8, qk_dim=8, num_heads=2, hidden_dim=8, num_centres=3, group_size=4)
    args.update(kw)
    return TokenAggregationBlock(**args)


@pytest.mark.parametrize('scale,params', [(2, 477_435), (3, 549_635), (4, 535_195)])
def test_paper_parameter_count(scale: int, params: int) -> None:
    body, head = CATANetBody(), CATANetHead(40, scale)
    assert _count(body) + _count(head) == params
    group = body.groups[0]
    assert (_count(group.tab), _count(group.lrsa), _count(group.conv)) == (21_192, 16_552,
                                                                           14_440)
    assert len(body.groups) == 8


def _restorer(scale: int) -> torch.nn.Module:
    cfg = dict(type='Restorer', scale=scale, backbone=dict(type='CATANetBody', **TINY),
               head=dict(type='CATANetHead', in_channels=8, scale=scale))
    with DefaultScope.overwrite_default_scope('densekit'):
        return MODELS.build(cfg)


@pytest.mark.parametrize('scale,size', [(2, (13, 11)), (3, (7, 5)), (4, (1, 3)), (2, (9, 40))])
def test_shapes_on_odd_sizes_batch_one(scale: int, size: tuple) -> None:
    model = _restorer(scale)
    model.train()
    out = model(torch.rand(1, 3, *size), mode='tensor')  # training step: centres initialised
    assert out.shape == (1, 3, scale * size[0], scale * size[1])
    out.mean().backward()
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *size), mode='tensor')
    assert out.shape == (1, 3, scale * size[0], scale * size[1]) and torch.isfinite(out).all()


def test_centres_follow_an_ema_in_training_only_and_are_saved() -> None:
    torch.manual_seed(0)
    tab = _tab(ema_decay=0.75).double()
    assert not bool(tab.initted) and torch.equal(tab.centres, torch.zeros(3, 8,
                                                                          dtype=torch.float64))
    tokens = torch.randn(2, 30, 8, dtype=torch.float64)
    first = tab.update_centres(tokens)  # first step copies the k-means result
    assert bool(tab.initted) and torch.equal(tab.centres, first.detach())
    torch.testing.assert_close(tab.centres.norm(dim=-1), torch.ones(3, dtype=torch.float64))
    before = tab.centres.clone()
    second = tab.update_centres(tokens + 0.3 * torch.randn_like(tokens))
    torch.testing.assert_close(tab.centres, 0.75 * before + 0.25 * second.detach(),
                               rtol=1e-15, atol=1e-15)
    assert second.requires_grad is False  # tokens without grad here; with grad below
    assert tab.update_centres(tokens.requires_grad_()).requires_grad

    body = CATANetBody(**TINY)
    x = torch.rand(2, 3, 12, 10)
    body.train()(x)
    stored = {k: v.clone() for k, v in body.state_dict().items() if 'centres' in k}
    assert len(stored) == 2 and all(v.abs().sum() > 0 for v in stored.values())
    body.eval()
    with torch.no_grad():
        a, b = body(x), body(x)
    assert torch.equal(a, b)  # deterministic, and the centres did not move
    assert all(torch.equal(body.state_dict()[k], v) for k, v in stored.items())
    fresh = CATANetBody(**TINY)
    fresh.load_state_dict(body.state_dict())
    assert bool(fresh.groups[0].tab.initted)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), a)
        fresh.groups[0].tab.centres.zero_()
        assert not torch.allclose(fresh(x), a)  # the loaded centres are used


def test_kmeans_step_finds_separated_clusters_and_keeps_empty_centres() -> None:
    gen = torch.Generator().manual_seed(0)
    axes = torch.eye(4, dtype=torch.float64)[:2]  # two clusters around e0 and e1
    tokens = torch.cat([axes[0] + 0.05 * torch.randn(20, 4, generator=gen, dtype=torch.float64),
                        axes[1] + 0.05 * torch.randn(10, 4, generator=gen, dtype=torch.float64)])
    unit = F.normalize(tokens, dim=-1)
    start = torch.tensor([[1.0, 0.2, 0, 0], [0.1, 1.0, 0, 0], [0, 0, 0, 1.0]],
                         dtype=torch.float64)
    centres = TokenAggregationBlock._kmeans_step(unit, start)
    torch.testing.assert_close(centres[0], F.normalize(unit[:20].sum(0), dim=0))
    torch.testing.assert_close(centres[1], F.normalize(unit[20:].sum(0), dim=0))
    assert torch.equal(centres[2], start[2])  # empty cluster: unchanged


def test_sorting_is_stable_and_restore_order_inverts_it() -> None:
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randn(2, 50, 6, generator=gen)
    centres = torch.randn(5, 6, generator=gen)
    ordered, order = sort_tokens(tokens, centres)
    ids = (F.normalize(tokens, dim=-1) @ F.normalize(centres, dim=-1).t()).argmax(-1)
    sorted_ids = ids.gather(1, order)
    assert (sorted_ids[:, 1:] >= sorted_ids[:, :-1]).all()
    # ties keep raster order: inside each cluster the raster indices increase
    same = sorted_ids[:, 1:] == sorted_ids[:, :-1]
    assert (order[:, 1:] > order[:, :-1])[same].all()
    assert torch.equal(restore_order(ordered, order), tokens)
    assert sorted(order[0].tolist()) == list(range(50))


def test_mirror_padding_and_patch_layout() -> None:
    assert mirror_index(4, 10, torch.device('cpu')).tolist() == [0, 1, 2, 3, 3, 2, 1, 0, 0, 1]
    assert patch_starts(16, 16) == (16, [0])
    assert patch_starts(17, 16) == (16, [0, 1])
    assert patch_starts(5, 16) == (5, [0])
    size, starts = patch_starts(50, 12)
    assert size == 12 and starts == [0, 10, 20, 30, 38]
    assert all(b - a <= size - 2 for a, b in zip(starts, starts[1:]))  # >= 2 pixels overlap


def _iasa_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gs: int) -> torch.Tensor:
    """IASA as described: sorted sequence cut into chunks of gs, the tail padded with the
    flipped last tokens, chunk g's queries attend to the keys of chunks g and g + 1 (the
    released code's slicing, valid for ``n >= pad + gs``)."""
    n = q.shape[-2]
    groups = math.ceil(n / gs)
    pad = groups * gs - n
    assert n - pad - gs >= 0
    qp = torch.cat([q, q[..., n - pad:, :].flip(-2)], dim=-2)
    kp = torch.cat([k, k[..., n - pad - gs:, :].flip(-2)], dim=-2)
    vp = torch.cat([v, v[..., n - pad - gs:, :].flip(-2)], dim=-2)
    out = []
    for g in range(groups):
        qg = qp[..., g * gs:(g + 1) * gs, :]
        kg, vg = kp[..., g * gs:(g + 2) * gs, :], vp[..., g * gs:(g + 2) * gs, :]
        weights = torch.softmax(qg @ kg.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        out.append(weights @ vg)
    return torch.cat(out, dim=-2)[..., :n, :]


@pytest.mark.parametrize('n', [23, 32, 17])
def test_intra_group_attention_matches_a_direct_reference(n: int) -> None:
    gen = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 3, n, 5, generator=gen, dtype=torch.float64) for _ in range(3))
    tab = _tab(group_size=8)
    torch.testing.assert_close(tab._intra_group(q, k, v), _iasa_reference(q, k, v, 8),
                               rtol=1e-12, atol=1e-12)


def test_lrsa_on_one_patch_is_full_self_attention() -> None:
    torch.manual_seed(3)
    lrsa = LocalRegionSelfAttention(8, 8, 2, 8, patch_size=16).double()
    x = torch.randn(1, 8, 5, 7, dtype=torch.float64)
    tokens = x.flatten(2).transpose(1, 2)
    attended = tokens + lrsa._attend(tokens)
    want = attended + lrsa.ffn(lrsa.ffn_norm(attended), (5, 7))
    torch.testing.assert_close(lrsa(x), want.transpose(1, 2).reshape(1, 8, 5, 7))
    # overlapping patches: a pixel covered twice gets the mean of its two attention outputs
    wide = LocalRegionSelfAttention(8, 8, 2, 8, patch_size=4).double()
    assert wide(torch.randn(2, 8, 6, 9, dtype=torch.float64)).shape == (2, 8, 6, 9)


def test_eval_results_do_not_depend_on_the_batch() -> None:
    torch.manual_seed(4)
    body = CATANetBody(**TINY).double()
    x = torch.rand(3, 3, 11, 9, dtype=torch.float64)
    body.train()(x)  # centres from one training step
    body.eval()
    with torch.no_grad():
        together = body(x)
        alone = torch.cat([body(x[i:i + 1]) for i in range(3)])
        reordered = body(x.flip(0)).flip(0)
    torch.testing.assert_close(together, alone, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(together, reordered, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('kwargs,match', [
    (dict(num_centres=(4,)), 'one entry per residual group'),
    (dict(group_sizes=()), 'group_sizes must be a non-empty'),
    (dict(patch_sizes=(2,) * 8), 'patch_size must be at least 3'),
    (dict(num_heads=3), 'num_heads=3 must divide dim=40'),
    (dict(qk_dim=30, num_heads=4), 'num_heads=4 must divide qk_dim=30'),
    (dict(ema_decay=1.0), r'ema_decay must be a float in \[0, 1\)'),
    (dict(num_iters=0), 'num_iters must be a positive int'),
    (dict(num_centres=(16, 0) * 4), 'num_centres item must be a positive int, got 0'),
])
def test_argument_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ArgumentError, match=match):
        CATANetBody(**kwargs)


def test_head_argument_errors_and_base() -> None:
    with pytest.raises(ArgumentError, match="input_skip must be 'bilinear' or 'bicubic'"):
        CATANetHead(8, 2, input_skip=None)
    with pytest.raises(ValueError, match='scale must be one of'):
        CATANetHead(8, 5)
    head = CATANetHead(8, 2)
    torch.nn.init.zeros_(head.conv_out.weight)
    torch.nn.init.zeros_(head.conv_out.bias)
    lq = torch.rand(1, 3, 5, 7)
    torch.testing.assert_close(head(torch.randn(1, 8, 5, 7), lq),
                               F.interpolate(lq, scale_factor=2, mode='bilinear',
                                             align_corners=False))


@pytest.mark.slow
def test_cpu_config_beats_bicubic_on_held_out_photos(tmp_path: Path) -> None:
    from tests.tasks.restoration.test_train import _gate

    scores, iters = _gate(
        REPO / 'configs' / 'restoration' / 'catanet-tiny_x2c24_1xb4-4min_photos.py', tmp_path)
    print(f'CATANet-tiny x2: PSNR-Y {scores["out"]:.2f} vs bicubic {scores["base"]:.2f} after '
          f'{iters} iters')
    assert scores['out'] > scores['base']
