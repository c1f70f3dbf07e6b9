"""Tests for PIIP: the backbone wrapper, its adapters, the interaction unit, configs."""
import math
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from densekit.backbones.piip import PIIP, PIIPSimplePyramid
from densekit.backbones.piip_adapters import build_piip_adapter
from densekit.backbones.piip_interaction import PIIPInjector, PIIPInteraction, reference_points
from densekit.registry import MODELS

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')


def vit(dims, heads=4, img=64, depth=4, **kw):
    return dict(type='mmseg.VisionTransformer', img_size=img, patch_size=16, embed_dims=dims,
                num_layers=depth, num_heads=heads, mlp_ratio=2, final_norm=True, **kw)


def three_branch(**kw):
    cfg = dict(type='densekit.PIIP',
               branches=[vit(96), vit(64, with_cls_token=False), vit(32, img=96)],
               resolutions=[64, 96, 128], num_interactions=2,
               interaction_cfg=dict(num_heads=4), out_channels=64)
    cfg.update(kw)
    return cfg


def build(cfg, seed=0, init=False):
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    if init:  # mmengine's init_weights is slow-ish (it logs every parameter); only where needed
        model.init_weights()
    return model.eval()


def set_gammas(model, value):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'gamma' in name:
                p.fill_(value)


def resized(x, scale):
    if scale == 1:
        return x
    size = (round(x.shape[-2] * scale), round(x.shape[-1] * scale))
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False)


# (a) identity property --------------------------------------------------------------------------

@pytest.mark.parametrize('hw', [(128, 128), (100, 76)])
def test_untrained_piip_equals_branches_alone(hw):
    piip = build(three_branch(), init=True)
    x = torch.randn(1, 3, *hw)
    with torch.no_grad():
        feats = piip.forward_branches(x)
        out = piip(x)
        for i, (feat, scale) in enumerate(zip(feats, [0.5, 0.75, 1.0])):
            alone = piip.branches[i].backbone(resized(x, scale))[-1]
            assert feat.shape == alone.shape
            torch.testing.assert_close(feat, alone, atol=1e-6, rtol=0)
        # the wrapper's output is the merge + pyramid of the standalone features
        ref = piip.pyramid(piip.merge_branches(
            [piip.branches[i].backbone(resized(x, s))[-1] for i, s in enumerate(piip.scales)],
            hw), image_hw=hw)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_branch_grids_and_scales():
    piip = build(three_branch())
    assert piip.scales == [0.5, 0.75, 1.0]
    feats = piip.forward_branches(torch.randn(1, 3, 128, 128))
    assert [tuple(f.shape[1:]) for f in feats] == [(96, 4, 4), (64, 6, 6), (32, 8, 8)]
    assert piip.stage_ranges == [[(0, 2), (2, 4)]] * 3


# interaction unit numerics ----------------------------------------------------------------------

def test_reference_points_are_pixel_centres():
    ref = reference_points((2, 4), 3, torch.device('cpu'))
    assert ref.shape == (3, 8, 1, 2)
    torch.testing.assert_close(ref[0, :4, 0, 0], torch.tensor([0.125, 0.375, 0.625, 0.875]))
    torch.testing.assert_close(ref[0, ::4, 0, 1], torch.tensor([0.25, 0.75]))


def _zero_offsets_single_point(inj):
    with torch.no_grad():
        inj.attn.sampling_offsets.weight.zero_()
        inj.attn.sampling_offsets.bias.zero_()
        inj.gamma_attn.fill_(0.5)


def _values(inj, feat):
    # what the attention reads at a sampled location: value_proj(LN(proj(feat)))
    return inj.attn.value_proj(inj.feat_norm(inj.proj(feat)))


def test_injector_matches_manual_computation_on_same_grid():
    torch.manual_seed(0)
    inj = PIIPInjector(32, 48, num_heads=4, num_points=1, ffn_ratio=0.0).eval()
    _zero_offsets_single_point(inj)
    q, feat = torch.randn(2, 20, 32), torch.randn(2, 20, 48)
    with torch.no_grad():
        out = inj(q, (4, 5), feat, (4, 5))
        # one point at the query's own pixel centre, softmax over one point = 1
        expected = q + 0.5 * inj.attn.output_proj(_values(inj, feat))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_injector_samples_coarser_grid_bilinearly():
    torch.manual_seed(0)
    inj = PIIPInjector(32, 16, num_heads=2, num_points=1, ffn_ratio=0.0).eval()
    _zero_offsets_single_point(inj)
    q, feat = torch.randn(1, 64, 32), torch.randn(1, 16, 16)
    with torch.no_grad():
        out = inj(q, (8, 8), feat, (4, 4))
        v = _values(inj, feat).transpose(1, 2).reshape(1, -1, 4, 4)
        up = F.interpolate(v, size=(8, 8), mode='bilinear', align_corners=False)
        expected = q + 0.5 * inj.attn.output_proj(up.flatten(2).transpose(1, 2))
    # interior pixels: both are bilinear at the same centres (borders differ: zero padding)
    inner = torch.zeros(8, 8, dtype=torch.bool)
    inner[1:-1, 1:-1] = True
    torch.testing.assert_close(out[:, inner.flatten()], expected[:, inner.flatten()],
                               atol=1e-5, rtol=1e-5)


def test_conv_ffn_branch_numerics():
    torch.manual_seed(0)
    inj = PIIPInjector(32, 32, num_heads=4).eval()
    with torch.no_grad():
        inj.gamma_ffn.fill_(2.0)  # attention gamma stays 0
    q, feat = torch.randn(2, 12, 32), torch.randn(2, 12, 32)
    with torch.no_grad():
        out = inj(q, (3, 4), feat, (3, 4))
        h = inj.ffn.fc1(inj.ffn_norm(q)).transpose(1, 2).reshape(2, 8, 3, 4)
        h = F.gelu(inj.ffn.dwconv(h)).flatten(2).transpose(1, 2)
        expected = q + 2.0 * inj.ffn.fc2(h)
    assert inj.ffn.fc1.out_features == 8  # 0.25 x 32
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_interaction_directions_use_inputs_before_the_unit():
    torch.manual_seed(0)
    unit = PIIPInteraction(dims=(64, 32), num_heads=4).eval()
    set_gammas(unit, 0.3)
    xa, xb = torch.randn(2, 16, 64), torch.randn(2, 64, 32)
    with torch.no_grad():
        ya, yb = unit(xa, (4, 4), xb, (8, 8))
        torch.testing.assert_close(ya, unit.b_to_a(xa, (4, 4), xb, (8, 8)))
        torch.testing.assert_close(yb, unit.a_to_b(xb, (8, 8), xa, (4, 4)))
    assert unit.b_to_a.attn.value_proj.out_features == 32  # value width 0.5 x d
    assert not torch.allclose(ya, xa) and not torch.allclose(yb, xb)


def test_units_run_finest_pair_first():
    piip = build(three_branch(num_interactions=1))
    set_gammas(piip, 0.2)
    calls = []

    def hook(name):
        def fn(module, args, out):
            calls.append((name, [a.clone() for a in args[::2]], [o.clone() for o in out]))
        return fn

    for j, unit in enumerate(piip.interactions[0]):
        unit.register_forward_hook(hook(f'{j + 1}<->{j + 2}'))
    with torch.no_grad():
        piip.forward_branches(torch.randn(1, 3, 128, 128))
    assert [c[0] for c in calls] == ['2<->3', '1<->2']
    # unit (1<->2) receives branch 2 as updated by unit (2<->3)
    torch.testing.assert_close(calls[1][1][1], calls[0][2][0])


# (b) non-zero gammas: outputs change, gradients flow ---------------------------------------------

def test_nonzero_gammas_change_outputs_and_gradients_flow():
    piip = build(three_branch())
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        base = piip(x)
    set_gammas(piip, 0.1)
    piip.train()
    out = piip(x)
    assert max((a - b).abs().max().item() for a, b in zip(out, base)) > 1e-3
    sum(o.pow(2).mean() for o in out).backward()
    injectors = [m for m in piip.modules() if isinstance(m, PIIPInjector)]
    assert len(injectors) == 2 * 2 * 2  # K=2 points x 2 pairs x 2 directions
    for inj in injectors:
        for name in ('proj.weight', 'gamma_attn', 'gamma_ffn', 'attn.sampling_offsets.weight',
                     'attn.sampling_offsets.bias', 'attn.attention_weights.weight',
                     'attn.value_proj.weight', 'attn.output_proj.weight', 'ffn.fc1.weight',
                     'ffn.dwconv.weight'):
            grad = inj.get_parameter(name).grad
            assert grad is not None and grad.abs().sum() > 0, name
    assert piip.merge_weights.grad.abs().min() > 0
    assert piip.branches[2].backbone.patch_embed.projection.weight.grad.abs().sum() > 0


# (c) pyramid shapes ------------------------------------------------------------------------------

@pytest.mark.parametrize('hw', [(128, 128), (100, 76), (65, 97)])
def test_pyramid_levels_strides_and_channels(hw):
    piip = build(three_branch())
    assert piip.out_channels == [64] * 4 and piip.strides == (4, 8, 16, 32)
    with torch.no_grad():
        outs = piip(torch.randn(1, 3, *hw))
    assert len(outs) == 4
    for out, s in zip(outs, piip.strides):
        assert out.shape == (1, 64, math.ceil(hw[0] / s), math.ceil(hw[1] / s))


def test_simple_pyramid_numerics():
    torch.manual_seed(0)
    pyr = PIIPSimplePyramid(32).eval()
    x = torch.randn(1, 32, 4, 6)
    with torch.no_grad():
        p4, p8, p16, p32 = pyr(x)
        torch.testing.assert_close(p16, x)
        torch.testing.assert_close(p32, F.max_pool2d(x, 2))
        torch.testing.assert_close(p8, F.conv_transpose2d(x, pyr.up8.weight, pyr.up8.bias, 2))
    assert p4.shape == (1, 32, 16, 24)


def test_merge_uses_learnable_weights():
    piip = build(three_branch())
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        feats = piip.forward_branches(x)
        parts = [F.interpolate(m(f), size=(8, 8), mode='bilinear', align_corners=False)
                 for m, f in zip(piip.merge, feats)]
        piip.merge_weights.copy_(torch.tensor([0.5, 2.0, -1.0]))
        merged = piip.merge_branches(feats, (128, 128))
    torch.testing.assert_close(merged, 0.5 * parts[0] + 2.0 * parts[1] - parts[2])


# (d) mixed families -------------------------------------------------------------------------------

class TinyStagesNet(nn.Module):
    """A densekit-style backbone exposing ``stem`` and ``stages``."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.stages = nn.ModuleList([
            nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())])

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return (x,)


def test_mixed_vit_resnet_and_stages_backbone():
    resnet = dict(type='mmdet.ResNet', depth=18, base_channels=8, out_indices=(3,),
                  norm_cfg=dict(type='BN'), zero_init_residual=False)
    torch.manual_seed(0)
    piip = MODELS.build(dict(type='densekit.PIIP',
                             branches=[vit(64), resnet, TinyStagesNet()],
                             scales=[0.5, 0.75, 1.0], num_interactions=2,
                             interaction_cfg=dict(num_heads=4), out_channels=32))
    piip.init_weights()
    piip.eval()
    assert [type(a).__name__ for a in piip.branches] == \
        ['MMSegViTAdapter', 'ResNetAdapter', 'StagesAdapter']
    assert piip.branches[1].stage_widths == [8, 16, 32, 64]
    assert piip.branches[2].stage_widths == [16, 16]
    assert piip.interactions[0][0].dims == (64, 16)  # ResNet after stage 2 of 4
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        feats = piip.forward_branches(x)
        for i, s in enumerate(piip.scales):
            torch.testing.assert_close(
                feats[i], piip.branches[i].backbone(resized(x, s))[-1], atol=1e-6, rtol=0)
    set_gammas(piip, 0.1)
    piip.train()
    outs = piip(x)
    assert [o.shape[-1] for o in outs] == [32, 16, 8, 4]
    sum(o.mean() for o in outs).backward()
    assert piip.branches[1].backbone.layer1[0].conv1.weight.grad.abs().sum() > 0
    assert piip.interactions[0][1].b_to_a.attn.sampling_offsets.weight.grad.abs().sum() > 0


# (e) bad configs ----------------------------------------------------------------------------------

@pytest.mark.parametrize('override, exc, match', [
    (dict(branches=[vit(32)]), ValueError, 'at least 2'),
    (dict(resolutions=[64, 128]), ValueError, r'one value per branch \(3 branches\)'),
    (dict(scales=[0.5, 0.75, 1.0]), ValueError, 'exactly one of resolutions'),
    (dict(resolutions=None), ValueError, 'exactly one of resolutions'),
    (dict(resolutions=[128, 96, 64]), ValueError, 'non-decreasing'),
    (dict(resolutions=None, scales=[0.5, 0.75, 0.9]), ValueError, r'scales\[-1\] must be 1'),
    (dict(resolutions=[0, 96, 128]), ValueError, 'positive'),
    (dict(branches=[vit(32), vit(64), vit(96)]), ValueError, 'parameter counts'),
    (dict(num_interactions=5), ValueError, r'num_interactions=5 exceeds the 4 stages of branch 1'),
    (dict(num_interactions=0), ValueError, 'positive int'),
    (dict(interaction_cfg=dict(num_heads=5)), ValueError,
     r'num_heads=5 must divide the branch width 96 .* branch 1 at interaction point 0'),
    (dict(interaction_cfg=dict(num_heads=32)), ValueError, 'value width 48'),
    (dict(interaction_cfg=dict(heads=4)), ValueError, r"unknown keys \['heads'\]"),
    (dict(out_channels=48), ValueError, 'GroupNorm needs num_groups dividing the 48'),
    (dict(branches=[vit(96), nn.Linear(2, 2), vit(32)]), TypeError, 'no adapter for .*Linear'),
    (dict(branches=[vit(96), 'vit', vit(32)]), TypeError, r'branches\[1\] must be'),
])
def test_bad_configs_raise(override, exc, match):
    with pytest.raises(exc, match=match):
        MODELS.build(three_branch(**override))


def test_check_order_can_be_disabled():
    piip = MODELS.build(three_branch(branches=[vit(32), vit(64), vit(96)], check_order=False,
                                     out_channels=32))
    assert piip.branch_widths == [32, 64, 96]


def test_bad_interaction_args():
    with pytest.raises(ValueError, match='dims must be a pair'):
        PIIPInteraction(dims=(64,))
    with pytest.raises(ValueError, match='value_ratio'):
        PIIPInteraction(dims=(64, 32), num_heads=4, value_ratio=0.0)
    with pytest.raises(ValueError, match='num_heads=3 must divide the branch width 64'):
        PIIPInteraction(dims=(64, 32), num_heads=3)


# (f) registry -------------------------------------------------------------------------------------

def test_build_from_mmdet_and_densekit_scopes():
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmseg.registry import MODELS as MMSEG_MODELS

    assert isinstance(MMDET_MODELS.build(three_branch()), PIIP)
    cfg = three_branch()
    cfg['type'] = 'PIIP'
    assert isinstance(MODELS.build(cfg), PIIP)
    unit = MMSEG_MODELS.build(dict(type='densekit.PIIPInteraction', dims=(64, 32), num_heads=4))
    assert isinstance(unit, PIIPInteraction)


def test_adapter_for_prebuilt_vit_matches_forward():
    torch.manual_seed(0)
    backbone = MODELS.build(vit(32, img=32, pre_norm=True))  # 2x2 pos grid, resized to 4x5
    backbone.init_weights()
    backbone.eval()
    adapter = build_piip_adapter(backbone)
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        tokens, hw = adapter.embed(x)
        assert hw == (4, 5) and tokens.shape == (1, 21, 32)
        tokens, hw = adapter.run_stages(0, 4, tokens, hw)
        torch.testing.assert_close(adapter.finalize(tokens, hw), backbone(x)[-1],
                                   atol=1e-6, rtol=0)


# (g) one training step with an FPN ----------------------------------------------------------------

def test_training_step_with_fpn():
    piip = build(three_branch())
    piip.train()
    fpn = MODELS.build(dict(type='mmdet.FPN', in_channels=piip.out_channels, out_channels=16,
                            num_outs=4))
    model = nn.ModuleDict(dict(backbone=piip, neck=fpn))
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(1)
    targets = [torch.randn(2, 16, 16 // 2 ** i, 16 // 2 ** i) for i in range(4)]

    def loss_fn():
        return sum(F.mse_loss(o, t) for o, t in zip(fpn(piip(x)), targets))

    loss = loss_fn()
    opt.zero_grad()
    loss.backward()
    gamma = piip.interactions[1][0].a_to_b.gamma_attn
    assert gamma.grad.abs().sum() > 0
    opt.step()
    assert gamma.abs().sum() > 0  # moved away from the identity initialisation
    with torch.no_grad():
        assert loss_fn().item() < loss.item()


# configs ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name, n_branches', [('piip_3branch_tsb_cpu.py', 3),
                                              ('piip_2branch_cpu.py', 2)])
def test_cpu_configs_build_and_run(name, n_branches):
    from mmengine.config import Config

    cfg = Config.fromfile(os.path.join(ROOT, 'configs', '_base_', 'models', name))
    assert all(b.num_layers == cfg.piip_depth == 12 for b in cfg.backbone.branches)
    # same structure with 4 layers per ViT to keep the test fast (the piip benchmark builds and
    # runs the full configs)
    for vit_cfg in [*cfg.backbone.branches, cfg.single_branch_baseline]:
        vit_cfg.update(num_layers=4, out_indices=3)
    piip = MODELS.build(cfg.backbone).eval()
    baseline = MODELS.build(cfg.single_branch_baseline)
    baseline.eval()  # mmseg's ViT.train() returns None, so no chaining
    neck = MODELS.build(cfg.neck)
    assert len(piip.branches) == n_branches
    assert cfg.input_size == 224
    size = 128  # any size works; keep the test fast
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        outs = piip(x)
        assert [tuple(o.shape[1:]) for o in outs] == [
            (cfg.piip_channels, size // s, size // s) for s in (4, 8, 16, 32)]
        assert len(neck(outs)) == 5
        assert baseline(x)[-1].shape == (1, piip.branch_widths[0], size // 16, size // 16)
    # the baseline is the largest branch (same weights shapes apart from the position grid)
    shapes = {k: v.shape for k, v in baseline.state_dict().items() if k != 'pos_embed'}
    assert shapes == {k: v.shape for k, v in piip.branches[0].backbone.state_dict().items()
                      if k != 'pos_embed'}
