"""FADConv: identity at init (equals a dilated conv), frequency bands, gradients."""
import pytest
import torch
import torch.nn.functional as F

from densekit.blocks import FADConv, FreqSelect, frequency_bands
from densekit.registry import MODELS


@pytest.mark.parametrize('dilation,stride,size', [(1, 1, (12, 12)), (2, 1, (15, 11)),
                                                  (3, 1, (17, 20)), (2, 2, (15, 12))])
def test_untrained_fadc_equals_dilated_conv(dilation, stride, size):
    torch.manual_seed(0)
    conv = MODELS.build(dict(type='densekit.FADConv', spatial_dims=2, in_channels=6,
                             out_channels=8, dilation=dilation, stride=stride))
    x = torch.randn(2, 6, *size)
    ref = F.conv2d(x, conv.weight, conv.bias, stride, dilation, dilation)
    out = conv(x)
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, atol=1e-4)


def test_grouped_without_adakern_and_freqselect():
    torch.manual_seed(0)
    conv = FADConv(2, 4, 8, dilation=2, groups=2, adakern=False, freq_select=False)
    x = torch.randn(1, 4, 10, 9)
    ref = F.conv2d(x, conv.weight, conv.bias, 1, 2, 2, 2)
    assert torch.allclose(conv(x), ref, atol=1e-4)


@pytest.mark.parametrize('size', [(16, 16), (15, 11), (7, 9)])
def test_frequency_bands_sum_to_input(size):
    x = torch.randn(2, 3, *size)
    bands = frequency_bands(x, (2, 4, 8))
    assert len(bands) == 4
    assert torch.allclose(sum(bands), x, atol=1e-5)
    # the lowest band of a constant image is the image, the high bands are zero
    const = torch.full((1, 1, 16, 16), 3.0)
    b = frequency_bands(const)
    assert torch.allclose(b[-1], const, atol=1e-5)
    assert all(t.abs().max() < 1e-5 for t in b[:-1])


def test_freqselect_is_identity_at_init_and_scales_bands():
    torch.manual_seed(0)
    fs = FreqSelect(3)
    x = torch.randn(2, 3, 12, 10)
    assert torch.allclose(fs(x), x, atol=1e-5)
    with torch.no_grad():
        fs.attention[0].bias.fill_(50.0)  # highest band scaled by 2
    bands = frequency_bands(x)
    assert torch.allclose(fs(x), x + bands[0], atol=1e-4)


def test_gradients_flow_to_every_part():
    torch.manual_seed(0)
    conv = FADConv(2, 4, 6, dilation=2)
    x = torch.randn(2, 4, 12, 11, requires_grad=True)
    (conv(x) ** 2).mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name in ('weight', 'dilation_conv.bias', 'mask_conv.bias',
                 'channel_attention.expand.bias', 'filter_attention.expand.bias',
                 'freq_select.attention.0.bias'):
        grad = conv.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_fadc_rejects_3d():
    with pytest.raises(ValueError, match='spatial_dims=2 only'):
        FADConv(3, 4, 4)
