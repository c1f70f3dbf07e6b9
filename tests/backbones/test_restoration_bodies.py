"""Restoration networks: output shapes at x2/x3/x4, paper parameter counts, building blocks
against direct reference computations."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

from densekit.blocks.mefc import build_expert
from densekit.registry import MODELS
from densekit.tasks.restoration.models import MEFC, MSFN, TKSA, LayerNorm2d, Shift8
from tests.restoration_threads import idle_threads  # noqa: F401

init_default_scope('densekit')


def _restorer(backbone: dict, head: dict, scale: int, **kw) -> torch.nn.Module:
    return MODELS.build(dict(type='Restorer', scale=scale, backbone=backbone, head=head, **kw))


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


SR_MODELS = {
    'edsr': lambda s: _restorer(dict(type='EDSRBody', channels=16, num_blocks=2),
                                dict(type='PixelShuffleHead', in_channels=16, scale=s), s),
    'fsrcnn': lambda s: _restorer(dict(type='FSRCNNBody', d=16, s=8, m=2),
                                  dict(type='DeconvHead', in_channels=16, scale=s), s,
                                  luma_only=True),
    'carn-m': lambda s: _restorer(dict(type='CARNBody', channels=16, groups=4, share_units=True),
                                  dict(type='PixelShuffleHead', in_channels=16, scale=s, act=True,
                                       groups=4), s),
    'scnet': lambda s: _restorer(dict(type='SCNetBody', channels=16, num_blocks=2),
                                 dict(type='ShiftUpsampleHead', in_channels=16, scale=s), s),
}


@pytest.mark.parametrize('name', sorted(SR_MODELS))
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_sr_models_upscale(name: str, scale: int) -> None:
    model = SR_MODELS[name](scale)
    out = model.restore(torch.rand(2, 3, 13, 17))
    assert out.shape == (2, 3, 13 * scale, 17 * scale)
    assert 0 <= out.min() and out.max() <= 1


def test_parameter_counts_match_the_papers() -> None:
    edsr = _restorer(dict(type='EDSRBody'), dict(type='PixelShuffleHead', in_channels=64,
                                                 scale=2), 2)
    assert _params(edsr) == 1_369_859  # EDSR baseline x2: 1.37M
    large = dict(type='EDSRBody', channels=256, num_blocks=32, res_scale=0.1)
    assert _params(_restorer(large, dict(type='PixelShuffleHead', in_channels=256, scale=4),
                             4)) == pytest.approx(43.1e6, rel=1e-3)  # EDSR x4: 43M
    # The CARN papers count the multi-scale (x2, x3, x4) upsamplers: CARN 1,592K, CARN-M 412K.
    carn = _restorer(dict(type='CARNBody'), dict(type='PixelShuffleHead', in_channels=64,
                                                 scales=(2, 3, 4), act=True), 2)
    assert _params(carn) == pytest.approx(1_592e3, rel=5e-3)
    carn_m = _restorer(dict(type='CARNBody', groups=4, share_units=True),
                       dict(type='PixelShuffleHead', in_channels=64, scales=(2, 3, 4), act=True,
                            groups=4), 2)
    assert _params(carn_m) == pytest.approx(412e3, rel=1e-2)
    # FSRCNN(56, 12, 4) has 12.5K weights (+ PReLU slopes and biases).
    fsrcnn = _restorer(dict(type='FSRCNNBody'), dict(type='DeconvHead', in_channels=56, scale=3),
                       3, luma_only=True)
    weights = sum(p.numel() for n, p in fsrcnn.named_parameters() if n.endswith('conv.weight')
                  or n.endswith('deconv.weight'))
    assert weights == 25 * 56 + 56 * 12 + 4 * 9 * 144 + 12 * 56 + 81 * 56
    drs = _restorer(dict(type='DRSformer'), dict(type='ReconstructionHead', in_channels=96), 1)
    assert _params(drs) == pytest.approx(33.7e6, rel=2e-3)  # DRSformer: 33.7M


def test_mdsr_heads_pick_the_scale() -> None:
    model = _restorer(dict(type='EDSRBody', channels=8, num_blocks=1, scales=(2, 3, 4)),
                      dict(type='PixelShuffleHead', in_channels=8, scales=(2, 3, 4)), 2)
    x = model.data_preprocessor.normalize(torch.rand(1, 3, 6, 6))
    for scale in (2, 3, 4):
        assert model.forward_tensor(x, scale).shape[-1] == 6 * scale
    with pytest.raises(ValueError, match='scale'):
        model.forward_tensor(x, 8)


def test_shift8_moves_each_group_one_pixel_with_zero_fill() -> None:
    x = torch.arange(1, 8 * 9 + 1, dtype=torch.float32).view(1, 8, 3, 3).repeat(1, 2, 1, 1)
    out = Shift8()(x)
    directions = [(-1, 0), (1, 0), (0, -1), (0, 1), (1, 1), (1, -1), (-1, 1), (-1, -1)]
    for channel in range(16):
        dy, dx = directions[channel // 2]
        padded = F.pad(x[0, channel], (1, 1, 1, 1))
        expected = padded[1 + dy:4 + dy, 1 + dx:4 + dx]
        torch.testing.assert_close(out[0, channel], expected)
    with pytest.raises(ValueError, match='divisible by 8'):
        Shift8()(torch.zeros(1, 12, 2, 2))


def _reference_tksa(module: TKSA, x: torch.Tensor) -> torch.Tensor:
    """Direct top-k attention: one topk + scatter mask per k, as in the paper."""
    n, c, h, w = x.shape
    heads = module.num_heads
    q, k, v = module.qkv_dw(module.qkv(x)).chunk(3, dim=1)
    q, k, v = (t.reshape(n, heads, c // heads, h * w) for t in (q, k, v))
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    attn = q @ k.transpose(-2, -1) * module.temperature
    out = 0
    for weight, keep in zip(module.mix, module.ks):
        mask = torch.zeros_like(attn).scatter_(-1, attn.topk(keep, dim=-1).indices, 1.0)
        masked = torch.where(mask > 0, attn, torch.full_like(attn, float('-inf')))
        out = out + (masked.softmax(-1) @ v) * weight
    return module.proj(out.reshape(n, c, h, w))


def test_tksa_matches_the_direct_top_k_computation() -> None:
    torch.manual_seed(0)
    module = TKSA(24, 2)
    assert module.ks == (6, 8, 9, 9)  # C' = 12: 12/2, 12*2/3, 12*3/4, 12*4/5
    with torch.no_grad():
        module.mix.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
        module.temperature.fill_(3.0)
    x = torch.randn(2, 24, 5, 7)
    torch.testing.assert_close(module(x), _reference_tksa(module, x))
    with pytest.raises(ValueError, match='divide'):
        TKSA(10, 3)


def test_layernorm_msfn_and_mefc() -> None:
    x = torch.randn(2, 8, 5, 6)
    ln = LayerNorm2d(8)
    expected = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True)
                                                          + 1e-5)
    torch.testing.assert_close(ln(x), expected, atol=1e-5, rtol=1e-5)
    ffn = MSFN(8, 2.66)
    assert ffn.project_in.out_channels == 2 * 21 and ffn(x).shape == x.shape
    mefc = MEFC(8, steps=2)
    weights = mefc.router(x).view(2, 2, 8).softmax(-1)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 2)) and mefc(x).shape == x.shape
    # the 3x3 average expert ignores the zero padding (count_include_pad=False)
    avg = build_expert('avg3', 1)(torch.ones(1, 1, 4, 4))
    assert torch.equal(avg, torch.ones(1, 1, 4, 4))
    dilated = build_expert('dil5', 4)
    assert dilated[0].dilation == (2, 2) and dilated[0].padding == (4, 4)
    with pytest.raises(ValueError, match='expert'):
        build_expert('sep4', 4)


def test_deraining_bodies_keep_the_size_and_pad_odd_inputs() -> None:
    drs = _restorer(dict(type='DRSformer', dim=8, num_blocks=(1, 0, 0, 1), heads=(1, 1, 2, 2),
                         mefc_steps=1), dict(type='ReconstructionHead', in_channels=16), 1)
    unet = _restorer(dict(type='ResUNet', channels=(8, 16), blocks=1),
                     dict(type='ReconstructionHead', in_channels=8), 1)
    assert drs.size_divisor == 8 and unet.size_divisor == 2
    for model in (drs, unet):
        assert model.restore(torch.rand(1, 3, 21, 30)).shape == (1, 3, 21, 30)
    with pytest.raises(ValueError, match='divisible by 8'):
        drs.backbone(torch.rand(1, 3, 12, 12))


@pytest.mark.parametrize('cfg, match', [
    (dict(type='EDSRBody', num_blocks=0), 'num_blocks'),
    (dict(type='EDSRBody', res_scale=2.0), 'res_scale'),
    (dict(type='SCNetBody', channels=12), 'multiple of 8'),
    (dict(type='CARNBody', channels=30, groups=4), 'groups'),
    (dict(type='PixelShuffleHead', in_channels=8, scale=5), 'scale'),
    (dict(type='PixelShuffleHead', in_channels=8, input_skip='nearest'), 'input_skip'),
    (dict(type='DRSformer', heads=(1, 2, 4, 5)), 'heads'),
    (dict(type='ResUNet', channels=()), 'channels'),
])
def test_bad_arguments_raise_at_build(cfg: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MODELS.build(cfg)
