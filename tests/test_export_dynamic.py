"""Dynamic-size ONNX export of the three models whose forward used to bake sizes into the trace:
RCNet (adaptive max pooling to another level's size), CATANet (a stable sort over the token
count, the LRSA patch grid in Python) and D-Former (padding to the window multiple computed
and branched on in Python).

Each config is exported with random weights at one size and verified by onnxruntime at
another (bound 1e-4, or four float32 floors). The rewritten forwards are checked against the
former eager code (kept here as references): equal in float32, and within 1e-10 in float64.
"""
from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

import densekit  # noqa: F401
from densekit.backbones.catanet import (
    LocalRegionSelfAttention,
    patch_layout,
    patch_starts,
    sort_tokens,
)
from densekit.export import ExportRefused, export_onnx
from densekit.inference import build_model
from densekit.layers import adaptive_max_pool, size_tensor
from densekit.tasks.medical3d.dformer import DFormerBlock, merge_groups, partition_groups
from tests.conftest import REPO
from tests.test_export import _check_graph
from tests.test_inference_safety import _save_model

RCNET = REPO / 'configs' / 'detection' / 'retinanet_r18-half_rcnet_1xb8-2000i_shapes-160x160.py'
CATANET = REPO / 'configs' / 'restoration' / 'catanet-tiny_x2c24_1xb4-4min_photos.py'
DFORMER = REPO / 'configs' / 'medical3d' / 'dformer-tiny_1xb2-600i_phantoms-48x48x48.py'


def _session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])


# --- export and verification at a size the graph was not traced with -----------------------

def test_rcnet_detector_exports_with_dynamic_sizes(tmp_path) -> None:
    ckpt = _save_model(RCNET, tmp_path / 'rcnet.pth')
    out = tmp_path / 'rcnet.onnx'
    report = export_onnx(str(RCNET), ckpt, str(out), shape=(64, 96), verify=True)
    assert report.verified, report.summary()
    assert report.verify_shape == (1, 3, 97, 131) and report.max_abs_diff <= report.bound
    _check_graph(str(out), 2)
    # a third size, batch 2: the CSN pools 45x62 -> 23x31 -> 12x16 levels as PyTorch does
    model = build_model(Config.fromfile(str(RCNET)), ckpt, 'cpu')
    pixels = torch.rand(2, 3, 45, 62, generator=torch.Generator().manual_seed(1)) * 255
    got = _session(out).run(None, {'input': pixels.numpy()})
    with torch.no_grad():
        feats = model.extract_feat((pixels - model.data_preprocessor.mean)
                                   / model.data_preprocessor.std)
        want = [level for group in model.bbox_head(feats) for level in group]
    assert [g.shape for g in got] == [tuple(w.shape) for w in want]
    assert max(np.abs(g - w.numpy()).max() for g, w in zip(got, want)) <= report.bound


def test_catanet_exports_with_dynamic_sizes_and_a_real_token_sort(tmp_path) -> None:
    cfg = Config.fromfile(str(CATANET))
    ckpt = tmp_path / 'catanet.pth'
    _save_model(cfg, ckpt)
    # untrained centres are zero (every token in the first cluster, the sort is the identity):
    # random centres make the graph sort for real
    state = torch.load(ckpt, weights_only=True)
    gen = torch.Generator().manual_seed(5)
    for key, value in state['state_dict'].items():
        if key.endswith('.centres'):
            value.copy_(torch.randn(value.shape, generator=gen))
    torch.save(state, ckpt)
    out = tmp_path / 'catanet.onnx'
    report = export_onnx(cfg, str(ckpt), str(out), verify=True)
    assert report.verified, report.summary()
    assert report.verify_shape == (1, 3, 37, 53) and report.max_abs_diff <= 1e-4
    _check_graph(str(out), 2)
    # smaller than a token group (64) and an LRSA patch (12): the clamped layout, in the graph
    model = build_model(cfg, str(ckpt), 'cpu')
    image = torch.rand(2, 3, 7, 9, generator=gen)
    got = _session(out).run(None, {'input': image.numpy()})[0]
    with torch.no_grad():
        want = model.restore(image).numpy()
    assert got.shape == want.shape == (2, 3, 14, 18)
    assert np.abs(got - want).max() <= 1e-4


def test_dformer_exports_with_dynamic_sizes(tmp_path) -> None:
    cfg = Config.fromfile(str(DFORMER))
    cfg.model.test_cfg.roi_size = (24, 24, 24)  # export 24^3, verify 32^3
    ckpt = _save_model(cfg, tmp_path / 'dformer.pth')
    out = tmp_path / 'dformer.onnx'
    report = export_onnx(cfg, ckpt, str(out), verify=True)
    assert report.verified, report.summary()
    # the last stage's grid is 3 at export (window clipped to 3), 4 at verification (window 4)
    assert report.input_shape == (1, 2, 24, 24, 24)
    assert report.verify_shape == (1, 2, 32, 32, 32)
    _check_graph(str(out), 3)
    model = build_model(cfg, ckpt, 'cpu')
    window = torch.randn(1, 2, 21, 30, 17, generator=torch.Generator().manual_seed(6))
    got = _session(out).run(None, {'input': window.numpy()})[0]
    with torch.no_grad():
        want = model.logits(window).numpy()
    assert got.shape == want.shape == (1, 3, 21, 30, 17)
    assert np.abs(got - want).max() <= report.bound


def test_an_opset_below_a_modules_minimum_is_refused(tmp_path) -> None:
    ckpt = _save_model(CATANET, tmp_path / 'catanet.pth')
    with pytest.raises(ExportRefused, match=r'opset 15 is too low: model\.backbone\.groups\.0'
                                            r'\.lrsa \(LocalRegionSelfAttention\) needs opset '
                                            r'>= 16; export with --opset 16 or higher'):
        export_onnx(str(CATANET), ckpt, str(tmp_path / 'catanet.onnx'), opset=15)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['catanet.pth']
    assert LocalRegionSelfAttention.onnx_min_opset == 16


# --- the rewritten eager code equals the former one -----------------------------------------

@pytest.mark.parametrize('dims', [2, 3])
def test_adaptive_max_pool_equals_torch(dims) -> None:
    gen = torch.Generator().manual_seed(0)
    pool = F.adaptive_max_pool2d if dims == 2 else F.adaptive_max_pool3d
    for length, size in [(10, 4), (13, 7), (13, 4), (7, 7), (5, 1), (25, 7), (49, 13),
                         (3, 5), (1, 2)]:
        shape = (2, 3, length, length + 3, 6)[:2 + dims]
        out = (size, 5, 4)[:dims]
        # integer values: many ties, whose max must still be the same
        x = torch.randint(-3, 4, shape, generator=gen).float()
        assert torch.equal(adaptive_max_pool(x, out), pool(x, out))
        x = torch.randn(shape, generator=gen)
        assert torch.equal(adaptive_max_pool(x, out), pool(x, out))
        like = torch.zeros(1, 1, *out)
        assert torch.equal(adaptive_max_pool(x, [size_tensor(like, d) for d in range(2, 2 + dims)]),
                           pool(x, out))
    with pytest.raises(ValueError, match='size needs one entry per spatial axis'):
        adaptive_max_pool(torch.zeros(1, 1, 4, 4), (2,))
    with pytest.raises(ValueError, match='output sizes must be positive ints, got 0'):
        adaptive_max_pool(torch.zeros(1, 1, 4, 4), (2, 0))


def test_token_sort_is_the_stable_argsort() -> None:
    gen = torch.Generator().manual_seed(1)
    for n, m in [(50, 5), (333, 3), (7, 16), (64, 1)]:
        tokens = torch.randn(2, n, 6, generator=gen)
        centres = torch.randn(m, 6, generator=gen)
        ordered, order = sort_tokens(tokens, centres)
        ids = (F.normalize(tokens, dim=-1) @ F.normalize(centres, dim=-1).t()).argmax(-1)
        want = torch.argsort(ids, dim=-1, stable=True)  # the former code
        assert torch.equal(order, want)
        assert torch.equal(ordered, tokens.gather(1, want.unsqueeze(-1).expand_as(tokens)))


def test_patch_layout_equals_patch_starts() -> None:
    for patch in (3, 4, 6, 12, 16, 28):
        for length in range(1, 70):
            size, starts = patch_layout(torch.tensor(length), patch)
            assert (int(size), starts.tolist()) == patch_starts(length, patch), (length, patch)


def _lrsa_former(lrsa: LocalRegionSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """LRSA as the former eager code computed it (Python patch grid, index_add, bincount)."""
    b, c, h, w = x.shape
    ph, tops = patch_starts(h, lrsa.patch_size)
    pw, lefts = patch_starts(w, lrsa.patch_size)
    rows = torch.tensor(tops).unsqueeze(-1) + torch.arange(ph)
    cols = torch.tensor(lefts).unsqueeze(-1) + torch.arange(pw)
    flat = (rows[:, None, :, None] * w + cols[None, :, None, :]).reshape(-1)
    patches = x.flatten(2)[:, :, flat].reshape(b, c, -1, ph * pw).permute(0, 2, 3, 1)
    attended = lrsa._attend(patches.reshape(-1, ph * pw, c)).reshape(patches.shape)
    summed = x.new_zeros(b, c, h * w).index_add(2, flat, attended.permute(0, 3, 1, 2).flatten(2))
    cover = torch.bincount(flat, minlength=h * w).to(x.dtype)
    tokens = (x.flatten(2) + summed / cover).transpose(1, 2)
    tokens = tokens + lrsa.ffn(lrsa.ffn_norm(tokens), (h, w))
    return tokens.transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize('size', [(13, 11), (24, 24), (5, 30)])
def test_lrsa_equals_the_former_eager_code(size) -> None:
    torch.manual_seed(3)
    lrsa = LocalRegionSelfAttention(8, 8, 2, 8, patch_size=6).eval()
    x = torch.randn(2, 8, *size)
    with torch.no_grad():
        assert torch.equal(lrsa(x), _lrsa_former(lrsa, x))
        lrsa, x = lrsa.double(), x.double()
        assert float((lrsa(x) - _lrsa_former(lrsa, x)).abs().max()) <= 1e-10


def _dformer_block_former(block: DFormerBlock, x: torch.Tensor) -> torch.Tensor:
    """The former eager block: a Python branch on whether the grid needs padding."""
    grid = list(x.shape[1:-1])
    window = [min(w, g) for w, g in zip(block.window_size, grid)]
    padded = [math.ceil(g / w) * w for g, w in zip(grid, window)]
    h = block.norm1(x)
    key_mask = None
    if padded != grid:
        pads = [0, 0]
        for g, p in zip(reversed(grid), reversed(padded)):
            pads += [0, p - g]
        h = F.pad(h, pads)
        valid = torch.zeros([1, *padded, 1], dtype=torch.bool)
        valid[(slice(None), *[slice(0, g) for g in grid])] = True
        key_mask = partition_groups(valid, window, block.dilated)[..., 0].repeat(x.shape[0], 1)
    groups = block.attn(partition_groups(h, window, block.dilated), key_mask)
    h = merge_groups(groups, window, padded, block.dilated)
    if padded != grid:
        h = h[(slice(None), *[slice(0, g) for g in grid])]
    x = x + h
    return x + block.mlp(block.norm2(x))


@pytest.mark.parametrize('grid', [(8, 8, 4), (5, 9, 3), (4, 6, 12)])
@pytest.mark.parametrize('dilated', [False, True])
def test_dformer_block_equals_the_former_eager_code(grid, dilated) -> None:
    """Padded grids are computed as before; a grid the window divides now goes through a zero
    pad and an all-true key mask (adding zeros to the attention logits): the same values."""
    torch.manual_seed(4)
    block = DFormerBlock(16, 2, (4, 4, 4), dilated=dilated).eval()
    x = torch.randn(2, *grid, 16)
    with torch.no_grad():
        assert torch.equal(block(x), _dformer_block_former(block, x))
        block, x = block.double(), x.double()
        assert float((block(x) - _dformer_block_former(block, x)).abs().max()) <= 1e-10
