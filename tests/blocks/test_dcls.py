"""DCLSConv: grid-initialised bilinear DCLS is a dilated conv; positions learn; 2D / 3D."""
import pytest
import torch
import torch.nn.functional as F

from densekit.blocks import DCLSConv
from densekit.registry import MODELS

CONV = {2: F.conv2d, 3: F.conv3d}


@pytest.mark.parametrize('spatial_dims,size,groups', [(2, (13, 10), 1), (2, (9, 16), 4),
                                                      (3, (7, 6, 9), 2)])
def test_grid_bilinear_equals_dilated_conv(spatial_dims, size, groups):
    torch.manual_seed(0)
    k, dks = 3, 7  # 3 taps per axis on a 7-cell grid -> dilation 3
    conv = DCLSConv(spatial_dims, 4, 8, kernel_count=k ** spatial_dims, dilated_kernel_size=dks,
                    groups=groups, init_positions='grid')
    assert conv.grid_dilation() == (3,) * spatial_dims
    ref_kernel = conv.weight.detach().reshape(8, 4 // groups, *([k] * spatial_dims))
    # the dense kernel is the small kernel spread on a dilation-3 grid
    dense = conv.dense_kernel().detach()
    expected = torch.zeros_like(dense)
    expected[(slice(None), slice(None)) + (slice(None, None, 3),) * spatial_dims] = ref_kernel
    assert torch.allclose(dense, expected, atol=1e-6)
    x = torch.randn(2, 4, *size)
    ref = CONV[spatial_dims](x, ref_kernel, conv.bias.detach(), 1, 3, 3, groups)
    assert torch.allclose(conv(x), ref, atol=1e-5)


def test_dense_kernel_interpolates_bilinearly():
    conv = DCLSConv(2, 1, 1, kernel_count=1, dilated_kernel_size=5, bias=False)
    with torch.no_grad():
        conv.weight.fill_(2.0)
        conv.P[0].fill_(0.25)   # row between cells 0 and 1
        conv.P[1].fill_(-1.5)   # column between cells -2 and -1
    k = conv.dense_kernel()[0, 0]
    assert torch.isclose(k.sum(), torch.tensor(2.0))
    # rows 2 (0) and 3 (+1) carry 0.75 / 0.25; columns 0 (-2) and 1 (-1) carry 0.5 / 0.5
    assert torch.isclose(k[2, 0], torch.tensor(2 * 0.75 * 0.5))
    assert torch.isclose(k[3, 1], torch.tensor(2 * 0.25 * 0.5))
    assert torch.count_nonzero(k) == 4


@pytest.mark.parametrize('method', ['bilinear', 'gauss'])
@pytest.mark.parametrize('spatial_dims', [2, 3])
def test_position_gradients_finite_and_nonzero(method, spatial_dims):
    torch.manual_seed(1)
    conv = MODELS.build(dict(type='densekit.DCLSConv', spatial_dims=spatial_dims, in_channels=3,
                             out_channels=3, kernel_count=5, dilated_kernel_size=5, groups=3,
                             method=method))
    x = torch.randn(2, 3, *([9] * spatial_dims))
    y = conv(x)
    assert y.shape == x.shape
    (y ** 2).mean().backward()
    for p in [conv.P, conv.weight] + ([conv.SIG] if method == 'gauss' else []):
        assert torch.isfinite(p.grad).all()
        assert p.grad.abs().sum() > 0


def test_gauss_kernel_is_normalised_and_positions_clamped():
    conv = DCLSConv(2, 2, 2, kernel_count=3, dilated_kernel_size=(5, 7), method='gauss',
                    bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.P.mul_(100)  # far outside the grid: clamped to the border
    k = conv.dense_kernel()
    assert torch.allclose(k.sum(dim=(2, 3)), torch.full((2, 2), 3.0), atol=1e-5)
    assert conv(torch.rand(1, 2, 11, 6)).shape == (1, 2, 11, 6)


@pytest.mark.parametrize('kwargs,match', [
    (dict(dilated_kernel_size=6), 'odd'),
    (dict(method='cubic'), 'method'),
    (dict(init_positions='grid', kernel_count=5), 'kernel_count'),
    (dict(groups=3), 'groups'),
    (dict(spatial_dims=1), 'spatial_dims'),
])
def test_bad_arguments(kwargs, match):
    args = dict(spatial_dims=2, in_channels=4, out_channels=4, kernel_count=9,
                dilated_kernel_size=7)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        DCLSConv(**args)
