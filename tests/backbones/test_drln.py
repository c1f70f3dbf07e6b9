"""DRLN (densekit.DRLNBody + PixelShuffleHead(act=True)): paper-size parameter counts, shapes,
the Laplacian attention's behaviour, the released code's wiring, argument errors, CPU gate."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope

import densekit  # noqa: F401  (registers everything)
from densekit.backbones.drln import DRLNBody, LaplacianAttention
from densekit.errors import ArgumentError
from densekit.heads.reconstruction import PixelShuffleHead
from densekit.registry import MODELS

REPO = Path(__file__).resolve().parents[2]

# Hand count at C = 64 (3x3 convs with bias): a residual unit at width w has 2 (9 w^2 + w);
# a DRLM = units at 64, 128, 256 + 1x1 512->64 + attention (3 x (9*64*4 + 4) + 9*12*64 + 64)
DRLM_PARAMS = (2 * (9 * 64 ** 2 + 64) + 2 * (9 * 128 ** 2 + 128) + 2 * (9 * 256 ** 2 + 256)
               + 512 * 64 + 64 + 3 * (9 * 64 * 4 + 4) + 9 * 12 * 64 + 64)
# compression convs k*64 -> 64, k = 2..4 in a group of 3 and 2..5 in a group of 4
COMPRESS_PARAMS = 4 * sum(9 * k * 64 * 64 + 64 for k in (2, 3, 4)) \
    + 2 * sum(9 * k * 64 * 64 + 64 for k in (2, 3, 4, 5))
HEAD_TAIL = (9 * 3 * 64 + 64) + (9 * 64 * 3 + 3)
UPSAMPLER = {2: 9 * 64 * 256 + 256, 3: 9 * 64 * 576 + 576, 4: 2 * (9 * 64 * 256 + 256)}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_hand_count_matches_methods_table() -> None:
    assert DRLM_PARAMS == 1_595_916  # "per DRLM 1.596M"
    assert COMPRESS_PARAMS == 2_360_576  # "compression convs 2.36M total"
    totals = {s: 20 * DRLM_PARAMS + COMPRESS_PARAMS + HEAD_TAIL + UPSAMPLER[s] for s in UPSAMPLER}
    # 34.43M (x2), 34.61M (x3), 34.58M (x4)
    assert [round(totals[s] / 1e6, 2) for s in (2, 3, 4)] == [34.43, 34.61, 34.58]


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_paper_size_parameter_count(scale: int) -> None:
    with torch.device('meta'):  # 34M parameters: count without allocating them
        body = DRLNBody()
        head = PixelShuffleHead(64, scale, act=True)
    assert sum(len(g.blocks) for g in body.groups) == 20
    assert [len(g.blocks) for g in body.groups] == [3, 3, 3, 3, 4, 4]
    assert _count(body) + _count(head) == 20 * DRLM_PARAMS + COMPRESS_PARAMS + HEAD_TAIL \
        + UPSAMPLER[scale]


def _restorer(scale: int, **body: object) -> torch.nn.Module:
    cfg = dict(type='Restorer', scale=scale,
               backbone=dict(type='DRLNBody', channels=8, groups=(1, 2), reduction=4, **body),
               head=dict(type='PixelShuffleHead', in_channels=8, scale=scale, act=True))
    with DefaultScope.overwrite_default_scope('densekit'):
        return MODELS.build(cfg)


@pytest.mark.parametrize('scale,size', [(2, (13, 7)), (3, (5, 9)), (4, (1, 1))])
def test_output_shape_on_odd_sizes_batch_one(scale: int, size: tuple) -> None:
    model = _restorer(scale).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *size), mode='tensor')
    assert out.shape == (1, 3, scale * size[0], scale * size[1])
    assert torch.isfinite(out).all()


def _centre_only_attention(att: LaplacianAttention, x: torch.Tensor) -> torch.Tensor:
    """The attention by hand: global mean, 1x1 products with the centre taps of each branch,
    ReLU, concat, centre taps of the fusing conv, sigmoid, rescale."""
    pooled = x.mean(dim=(2, 3))
    squeezed = [F.relu(pooled @ b.conv.weight[:, :, 1, 1].t() + b.conv.bias)
                for b in att.branches]
    fuse = att.fuse.conv
    scales = torch.sigmoid(torch.cat(squeezed, 1) @ fuse.weight[:, :, 1, 1].t() + fuse.bias)
    return x * scales[:, :, None, None]


def test_laplacian_attention_is_a_centre_tap_excitation() -> None:
    torch.manual_seed(0)
    att = LaplacianAttention(16, reduction=4).double()
    x = torch.randn(2, 16, 7, 5, dtype=torch.float64)
    out = att(x)
    torch.testing.assert_close(out, _centre_only_attention(att, x), rtol=1e-12, atol=1e-12)
    scales = out / x
    assert ((scales > 0) & (scales < 1)).all()
    assert torch.allclose(scales, scales[:, :, :1, :1].expand_as(scales), rtol=0, atol=1e-12)
    # the dilations change the padding only: on the 1x1 pooled map the result is the same
    other = LaplacianAttention(16, reduction=4, dilations=(1, 2, 9)).double()
    other.load_state_dict(att.state_dict())
    torch.testing.assert_close(other(x), out, rtol=0, atol=1e-14)


def _inputs_of(module: torch.nn.Module, fn) -> list:
    seen: list = []
    handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    fn()
    handle.remove()
    return seen


def test_released_wiring_and_clean_wiring() -> None:
    torch.manual_seed(0)
    official = DRLNBody(channels=8, groups=(2, 2), reduction=4).double().eval()
    clean = DRLNBody(channels=8, groups=(2, 2), reduction=4, official_wiring=False).double()
    clean.load_state_dict(official.state_dict())
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    # the second DRLM of the second group gets the group input, as the first one does
    first = _inputs_of(official.groups[1].blocks[0], lambda: official(x))[0]
    second = _inputs_of(official.groups[1].blocks[1], lambda: official(x))[0]
    assert torch.equal(first, second)
    second_clean = _inputs_of(clean.groups[1].blocks[1], lambda: clean(x))[0]
    assert not torch.allclose(second_clean, first)
    assert not torch.allclose(official(x), clean(x))
    # with a single group the two data flows are the same network
    one = DRLNBody(channels=8, groups=(3,), reduction=4).double()
    one_clean = DRLNBody(channels=8, groups=(3,), reduction=4, official_wiring=False).double()
    one_clean.load_state_dict(one.state_dict())
    torch.testing.assert_close(one(x), one_clean(x), rtol=0, atol=0)


@pytest.mark.parametrize('kwargs,match', [
    (dict(groups=()), 'groups must be a non-empty'),
    (dict(groups=(3, 0)), 'groups item must be a positive int, got 0'),
    (dict(groups='33'), 'groups must be a non-empty'),
    (dict(channels=0), 'channels must be a positive int'),
    (dict(channels=24, reduction=16), 'reduction=16 must divide channels=24'),
    (dict(dilations=()), 'dilations must be a non-empty'),
    (dict(official_wiring='yes'), 'official_wiring must be a bool'),
])
def test_argument_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ArgumentError, match=match):
        DRLNBody(**kwargs)


@pytest.mark.slow
def test_cpu_config_beats_bicubic_on_held_out_photos(tmp_path: Path) -> None:
    from tests.tasks.restoration.test_train import _gate

    scores, iters = _gate(REPO / 'configs' / 'restoration' / 'drln-tiny_x2c16_1xb4-4min_photos.py',
                          tmp_path)
    print(f'DRLN-tiny x2: PSNR-Y {scores["out"]:.2f} vs bicubic {scores["base"]:.2f} after '
          f'{iters} iters')
    assert scores['out'] > scores['base']
