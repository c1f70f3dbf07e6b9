"""SPDConv (space-to-depth) and the recalibration blocks scSE / ECA, 2D and 3D."""
import math

import pytest
import torch
import torch.nn.functional as F

from densekit.blocks import ECA, SPDConv, depth_to_space, eca_kernel_size, scSE, space_to_depth
from densekit.registry import MODELS


@pytest.mark.parametrize('shape', [(2, 3, 8, 6), (1, 2, 7, 5), (1, 2, 4, 6, 8), (1, 3, 5, 3, 7)])
def test_space_to_depth_is_a_lossless_permutation(shape):
    x = torch.randn(*shape)
    y = space_to_depth(x, 2)
    dims = len(shape) - 2
    assert y.shape[1] == shape[1] * 2 ** dims
    assert list(y.shape[2:]) == [math.ceil(s / 2) for s in shape[2:]]
    assert torch.equal(depth_to_space(y, 2, size=shape[2:]), x)
    # every value appears once, padding adds zeros only
    assert torch.equal(torch.sort(y[y != 0].flatten())[0], torch.sort(x[x != 0].flatten())[0])


def test_space_to_depth_phase_layout():
    x = torch.arange(16.).reshape(1, 1, 4, 4)
    y = space_to_depth(x)
    assert torch.equal(y[0, 0], x[0, 0, 0::2, 0::2])  # offset (0, 0)
    assert torch.equal(y[0, 1], x[0, 0, 0::2, 1::2])  # offset (0, 1)
    assert torch.equal(y[0, 2], x[0, 0, 1::2, 0::2])  # offset (1, 0)


def test_odd_sizes_without_padding_raise():
    with pytest.raises(ValueError, match='multiple of scale'):
        space_to_depth(torch.rand(1, 1, 5, 4), 2, pad=False)
    with pytest.raises(ValueError, match='multiple of scale'):
        SPDConv(2, 2, 4, pad=False)(torch.rand(1, 2, 5, 4))


@pytest.mark.parametrize('spatial_dims,size', [(2, (97, 131)), (2, (64, 64)), (3, (9, 8, 11))])
def test_spdconv_shape_matches_strided_conv(spatial_dims, size):
    spd = MODELS.build(dict(type='densekit.SPDConv', spatial_dims=spatial_dims, in_channels=3,
                            out_channels=5))
    x = torch.randn(2, 3, *size)
    conv = (F.conv2d if spatial_dims == 2 else F.conv3d)
    strided = conv(x, torch.zeros(5, 3, *([3] * spatial_dims)), stride=2, padding=1)
    y = spd(x)
    assert y.shape == strided.shape
    y.sum().backward()
    assert spd.conv.conv.weight.grad.abs().sum() > 0


def test_eca_kernel_size_formula():
    for c in (1, 3, 16, 32, 64, 100, 256, 512, 1024, 2048):
        t = int(abs(math.log2(c) / 2 + 1 / 2))
        assert eca_kernel_size(c) == (t if t % 2 else t + 1)
        assert eca_kernel_size(c) % 2 == 1
    assert [eca_kernel_size(c) for c in (64, 256, 1024)] == [3, 5, 5]
    assert eca_kernel_size(64, gamma=1, b=1) == 7


@pytest.mark.parametrize('spatial_dims', [2, 3])
def test_eca_equals_hand_computation(spatial_dims):
    torch.manual_seed(0)
    c = 64
    eca = ECA(spatial_dims, c, kernel_size=5)
    x = torch.randn(2, c, *([5] * spatial_dims))
    w = eca.conv.weight.detach().flatten()  # 5 taps
    pooled = x.flatten(2).mean(-1)  # (N, C)
    padded = F.pad(pooled, (2, 2))
    gate = torch.zeros_like(pooled)
    for ch in range(c):
        gate[:, ch] = torch.sigmoid((padded[:, ch:ch + 5] * w).sum(-1))
    expected = x * gate.reshape(2, c, *([1] * spatial_dims))
    assert torch.allclose(eca(x), expected, atol=1e-6)


@pytest.mark.parametrize('combine', ['max', 'add'])
@pytest.mark.parametrize('spatial_dims', [2, 3])
def test_scse_equals_direct_computation(combine, spatial_dims):
    torch.manual_seed(0)
    block = MODELS.build(dict(type='densekit.scSE', spatial_dims=spatial_dims, channels=8,
                              reduction=2, combine=combine))
    x = torch.randn(2, 8, *([6] * spatial_dims))
    flat = x.flatten(2)
    r, e, s = block.cse.reduce, block.cse.expand, block.sse.squeeze
    z = torch.relu(flat.mean(-1) @ r.weight.flatten(1).T + r.bias)
    cgate = torch.sigmoid(z @ e.weight.flatten(1).T + e.bias)  # (N, C)
    sgate = torch.sigmoid(torch.einsum('ncp,c->np', flat, s.weight.flatten()) + s.bias)
    c_out = flat * cgate[:, :, None]
    s_out = flat * sgate[:, None, :]
    expected = torch.maximum(c_out, s_out) if combine == 'max' else c_out + s_out
    out = block(x)
    assert out.shape == x.shape
    assert torch.allclose(out.flatten(2), expected, atol=1e-6)


def test_recalibration_bad_arguments():
    with pytest.raises(ValueError, match='combine'):
        scSE(2, 8, combine='mul')
    with pytest.raises(ValueError, match='kernel_size'):
        ECA(2, 8, kernel_size=4)
    with pytest.raises(ValueError, match='spatial_dims'):
        scSE(1, 8)
