"""densekit.accel: the dispatcher's policy, the switch (function, context manager, environment
variable, set_fast_eval) turning every fast path off, and the bugs the execution layer fixes
(autocast, tracing, stale BatchNorm folds, half-precision instance-norm statistics)."""
from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
import warnings
from typing import Callable, Dict, List

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import densekit.accel.conv as accel_conv
import densekit.accel.policy as policy
import densekit.accel.volumetric as volumetric
import densekit.backbones.fasternet as fasternet_mod
import densekit.backbones.inceptionnext as inceptionnext_mod
import densekit.blocks.residual as blocks_mod
import densekit.layers.conv_norm_act as cna
import densekit.necks.aspp as aspp_mod
import densekit.necks.fpn as fpn_mod
import densekit.necks.jpu as jpu_mod
from densekit.accel import (
    PATHS,
    fast_paths,
    fast_paths_enabled,
    is_capturing,
    set_fast_paths,
    taps,
    use,
)
from densekit.accel.volumetric import instance_norm_act_, instance_stats
from densekit.backbones import FasterNet, InceptionNeXt
from densekit.heads import ASPPHead
from densekit.layers import ConvNormAct, set_fast_eval
from densekit.necks import ASPP, FPN, JPU
from densekit.tasks.medical3d import ResBlock, fast_inference
from tests.helpers.numerics import (
    assert_close_to_reference,
    float64_copy,
    randomize_norms_,
    torch_threads,
)


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    with torch_threads(1):
        yield


# -- policy -------------------------------------------------------------------------------------
def test_use_allows_cpu_float32_only():
    x = torch.zeros(2, 3)
    assert use('tap_skip', x, x)
    assert not use('tap_skip', x, x.double())
    assert not use('tap_skip', x.bfloat16())
    assert not use('tap_skip', x.half())
    assert not use('tap_skip', torch.zeros(2, 3, device='meta'))  # any non-CPU device
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert not use('tap_skip', x)
    with torch.no_grad():
        assert use('tap_skip', x)  # grad mode is each path's own business


def test_use_steps_aside_under_trace_compile_and_export(monkeypatch):
    seen: List[bool] = []

    def fn(x):
        seen.append(use('polyphase', x))
        return x + 1

    x = torch.zeros(3)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.jit.trace(fn, (x,), check_trace=False)
    assert seen == [False]
    compiled = torch.compile(fn, backend='eager', fullgraph=False)
    compiled(x)
    assert seen[-1] is False and not is_capturing()
    monkeypatch.setattr(torch.onnx, 'is_in_onnx_export', lambda: True)
    assert is_capturing() and not use('polyphase', x)


def test_switch_arguments_are_checked():
    with pytest.raises(ValueError, match='no_such_path'):
        use('no_such_path', torch.zeros(1))
    with pytest.raises(ValueError, match='no_such_path'):
        set_fast_paths(False, paths=['no_such_path'])
    with pytest.raises(TypeError, match='enabled'):
        set_fast_paths('off')
    with pytest.raises(TypeError, match='enabled'):
        with fast_paths(0):
            pass


def test_switch_function_and_context_manager():
    x = torch.zeros(1)
    assert fast_paths_enabled()
    with fast_paths(False):
        assert not any(use(p, x) for p in PATHS)
        with fast_paths(True, paths='tap_skip'):
            assert use('tap_skip', x) and not use('polyphase', x)
    assert all(use(p, x) for p in PATHS)
    set_fast_paths(False)
    try:
        assert not any(use(p, x) for p in PATHS)
    finally:
        set_fast_paths(True)
    assert all(use(p, x) for p in PATHS)


@pytest.mark.parametrize('value, enabled', [('0', set()), ('off', set()), ('1', set(PATHS)),
                                            (None, set(PATHS)),
                                            ('tap_skip,fold_bn', {'tap_skip', 'fold_bn'})])
def test_environment_variable_values(value, enabled):
    state = policy._parse_env(value)
    assert {p for p, on in state.items() if on} == enabled
    with pytest.raises(ValueError, match='warp_drive'):
        policy._parse_env('tap_skip,warp_drive')


def test_environment_variable_is_read_at_import():
    code = ('import torch\nfrom densekit.accel import PATHS, use\n'
            'print(sum(use(p, torch.zeros(1)) for p in PATHS))\n')
    env = dict(os.environ, DENSEKIT_FAST_PATHS='0')
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout.strip()
    assert out == '0'


# -- every fast path, and the switch turning each off ------------------------------------------
def _counting(fn: Callable, counter: Dict[str, int], path: str,
              only_not_none: bool = False) -> Callable:
    def wrapped(*args, **kwargs):
        out = fn(*args, **kwargs)
        if not only_not_none or out is not None:
            counter[path] += 1
        return out
    return wrapped


@pytest.fixture()
def spies(monkeypatch):
    """Count every entry into a fast path's implementation."""
    counter = {p: 0 for p in PATHS}
    monkeypatch.setattr(taps, 'SKIP_MIN_MACS', 0)
    patch = [
        (accel_conv, 'conv_channels_last', 'tap_skip'),
        (accel_conv, 'conv_polyphase', 'polyphase'),
        (cna, 'conv_phases', 'polyphase'),
        (aspp_mod, 'channels_last', 'channels_last'),
        (jpu_mod, 'channels_last', 'channels_last'),
        (aspp_mod, 'constant_map_conv', 'aspp_pool_bias'),
        (fpn_mod, '_power_of_two_ratios', 'fpn_add'),
        (cna, 'fold_conv_bn', 'fold_bn'),
        (inceptionnext_mod.MetaNeXtBlock, '_folded_params', 'fold_bn'),
        (blocks_mod, 'instance_norm_act_', 'volumetric'),
    ]
    for owner, name, path in patch:
        monkeypatch.setattr(owner, name, _counting(getattr(owner, name), counter, path))
    monkeypatch.setattr(fasternet_mod.PConv, 'mix_',
                        _counting(fasternet_mod.PConv.mix_, counter, 'inplace'))
    inplace = {k: _counting(v, counter, 'inplace') for k, v in cna._INPLACE_FNS.items()}
    monkeypatch.setattr(cna, '_INPLACE_FNS', inplace)
    routes = {k: _counting(v, counter, 'volumetric', only_not_none=True)
              for k, v in volumetric._ROUTES.items()}
    monkeypatch.setattr(volumetric, '_ROUTES', routes)
    return counter


def _models() -> Dict[str, nn.Module]:
    torch.manual_seed(0)
    models = dict(
        aspp=ASPP(8, 8, dilations=(1, 12, 24)),
        jpu=JPU(in_channels=(8, 16), mid_channels=8, dilations=(1, 2, 8)),
        fpn=FPN([8, 16], 8, num_outs=2),
        fasternet=FasterNet(dict(depths=[1, 1, 1, 1], widths=[8, 16, 24, 32]),
                            drop_path_rate=0.0),
        inceptionnext=InceptionNeXt(dict(depths=[1, 1, 1, 1], widths=[16, 16, 24, 32])),
        resblock=ResBlock(3, 2, 4),
        foreign=nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.InstanceNorm3d(4)),
    )
    for m in models.values():
        randomize_norms_(m)
    return models


def _workload(models: Dict[str, nn.Module], foreign: bool = True) -> List[torch.Tensor]:
    """Train (fwd + bwd) and eval every model on inputs that reach each fast path."""
    gen = torch.Generator().manual_seed(0)
    feats2 = [torch.randn(2, 8, 40, 48, generator=gen), torch.randn(2, 16, 20, 24, generator=gen)]
    image = torch.randn(2, 3, 64, 64, generator=gen)
    volume = torch.randn(1, 2, 12, 12, 12, generator=gen)
    calls = [('aspp', lambda m: m([feats2[0]])), ('jpu', lambda m: m(feats2)),
             ('fpn', lambda m: m(feats2)), ('fasternet', lambda m: m(image)),
             ('inceptionnext', lambda m: m(image)), ('resblock', lambda m: m(volume))]
    outs: List[torch.Tensor] = []
    for name, call in calls:
        model = models[name].train()
        res = call(model)
        res = list(res) if isinstance(res, (list, tuple)) else [res]
        sum(r.square().mean() for r in res).backward()
        outs += [r.detach() for r in res]
        outs += [p.grad.clone() for p in model.parameters() if p.grad is not None]
        model.zero_grad()
        with torch.no_grad():
            res = call(model.eval())
        outs += list(res) if isinstance(res, (list, tuple)) else [res]
    with torch.inference_mode(), fast_inference():
        outs.append(models['resblock'].eval()(volume).clone())
        if foreign:
            outs.append(models['foreign'](volume).clone())
    return outs


def test_every_fast_path_runs_by_default(spies):
    _workload(_models())
    assert all(spies.values()), f'fast paths never taken: {[p for p, n in spies.items() if not n]}'


def test_switch_turns_every_fast_path_off(spies):
    models = _models()
    fast = _workload(copy.deepcopy(models))
    for p in spies:
        spies[p] = 0
    with fast_paths(False):
        plain = _workload(copy.deepcopy(models))
    assert not any(spies.values()), f'still taken: {[p for p, n in spies.items() if n]}'
    # every fast path is exact up to float rounding: same numbers as the plain run
    assert len(fast) == len(plain)
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()) + 1e-6)
    set_fast_paths(False)
    try:
        _workload(copy.deepcopy(models))
    finally:
        set_fast_paths(True)
    assert not any(spies.values())


def test_set_fast_eval_turns_every_fast_path_of_a_model_off(spies):
    models = _models()
    for model in models.values():
        set_fast_eval(model, False)
    # a foreign network inside fast_inference() is not a densekit module: only the switch
    # (or fast_inference(ops=False)) reaches its functional ops, so it is left out here
    _workload(models, foreign=False)
    assert not any(spies.values()), f'still taken: {[p for p, n in spies.items() if n]}'


# -- the bugs -------------------------------------------------------------------------------
@pytest.mark.parametrize('norm', [dict(type='BN'), dict(type='GN', num_groups=8)])
@pytest.mark.parametrize('head', ['ASPPHead', 'FCNHead'])
def test_dilated_heads_train_under_bf16_autocast_like_mmseg(head, norm):
    from mmseg.models import decode_heads as peer_heads

    import densekit.heads as ours_heads

    kw = dict(in_channels=64, channels=16, num_classes=3, norm_cfg=norm, dropout_ratio=0.0)
    kw.update(dict(dilations=(1, 12, 24, 36)) if head == 'ASPPHead' else dict(dilation=6))
    torch.manual_seed(0)
    peer = getattr(peer_heads, head)(**kw)
    ours = getattr(ours_heads, head)(**kw)
    ours.load_state_dict(peer.state_dict())
    x = torch.randn(2, 64, 64, 64)
    outs = []
    for model in (ours, peer):
        xi = x.clone().requires_grad_()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            y = model.train()([xi])
        y.float().square().mean().backward()
        outs.append((y.float(), xi.grad))
    (y_ours, g_ours), (y_peer, g_peer) = outs
    assert y_ours.dtype == torch.float32 and torch.isfinite(g_ours).all()
    # under autocast densekit runs the plain ops, as mmseg: the same bf16 numbers
    torch.testing.assert_close(y_ours, y_peer, rtol=2e-2, atol=2e-2 * float(y_peer.abs().max()))
    torch.testing.assert_close(g_ours, g_peer, rtol=2e-2, atol=2e-2 * float(g_peer.abs().max()))


def _bf16_train(model: nn.Module, x: torch.Tensor) -> None:
    ref = [t.float() for t in model.train()(x.clone())]
    x = x.clone().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(x)
    sum(o.float().square().mean() for o in outs).backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0
    for o, r in zip(outs, ref):
        err = float((o.float() - r).norm() / r.norm())
        assert err < 5e-2, f'bf16 output off fp32 by {err:.3g}'


def test_rapidnet_unireplknet_channels_last_and_3d_aspp_train_under_bf16():
    from densekit.backbones import RapidNet, UniRepLKNet

    torch.manual_seed(0)
    rapid = RapidNet(dict(depths=[1, 1, 1, 1], widths=[8, 16, 24, 32], mldc_blocks=[0, 0, 1, 1]))
    _bf16_train(rapid, torch.randn(2, 3, 64, 64))
    uni = UniRepLKNet(dict(depths=[1, 1, 1, 1], widths=[8, 16, 24, 32],
                           kernel_sizes=[[3], [7], [7], [3]]))
    _bf16_train(uni, torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last))
    aspp = ASPP(8, 8, dilations=(1, 2, 3), spatial_dims=3)
    x = torch.randn(2, 8, 12, 12, 12)
    ref = aspp.train()([x])[0]
    xg = x.clone().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = aspp([xg])[0]
    y.float().square().mean().backward()
    assert torch.isfinite(xg.grad).all()
    assert float((y.float() - ref).norm() / ref.norm()) < 5e-2


def test_traced_aspp_head_generalises_to_a_second_size():
    torch.manual_seed(0)
    head = randomize_norms_(ASPPHead(in_channels=32, channels=16, num_classes=3,
                                     dilations=(1, 12, 24, 36))).eval()
    x1, x2 = torch.randn(1, 32, 40, 48), torch.randn(1, 32, 23, 61)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        traced = torch.jit.trace(head, ([x1],))
        got = traced([x2])
        with fast_paths(False):
            plain = head([x2])
        fast = head([x2])
        ref = float64_copy(head)([x2.double()])
    assert torch.equal(got, plain)
    assert_close_to_reference(fast, plain, ref)


def _fold_block() -> ConvNormAct:
    torch.manual_seed(0)
    return randomize_norms_(ConvNormAct(2, 4, 6, 3, padding=1, norm_cfg=dict(type='BN'))).eval()


def _check_fresh(block: ConvNormAct, x: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        fast = block(x)
        with fast_paths(False):
            plain = block(x)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(fast, before), 'the edit did not change the output'
    return fast


@pytest.mark.parametrize('edit', ['bn.weight.data.mul_', 'conv.weight.data.copy_',
                                  'running_var.data', 'optimizer', 'load_state_dict',
                                  'to_double_and_back'])
def test_bn_fold_follows_every_weight_change(edit):
    block = _fold_block()
    x = torch.randn(2, 4, 9, 11)
    with torch.no_grad():
        before = block(x)
        assert block.folds_norm(x)
    if edit == 'bn.weight.data.mul_':
        block.bn.weight.data.mul_(3)
    elif edit == 'conv.weight.data.copy_':
        block.conv.weight.data.copy_(torch.randn_like(block.conv.weight))
    elif edit == 'running_var.data':
        block.bn.running_var.data.mul_(4)
    elif edit == 'optimizer':
        opt = torch.optim.SGD(block.parameters(), lr=0.5)
        block(x).square().mean().backward()  # eval mode, autograd on: frozen-BN fine-tuning
        opt.step()
    elif edit == 'load_state_dict':
        other = randomize_norms_(ConvNormAct(2, 4, 6, 3, padding=1, norm_cfg='BN'), seed=5)
        block.load_state_dict(other.state_dict())
    else:
        block.to(torch.float64)
        with torch.no_grad():
            block.conv.weight.mul_(-1)
        block.to(torch.float32)
    _check_fresh(block, x, before)


@pytest.mark.parametrize('layout', ['nchw', 'channels_last'])
def test_bn_fold_only_where_it_pays(layout, monkeypatch):
    # a 3x3 conv of 64 -> 64 channels (36864 weights) on a 3x5 map (960 outputs): an NCHW
    # input keeps the BatchNorm on the output; a channels-last one folds (the weight is
    # rewritten channels-last by the conv anyway)
    calls = {'fold': 0}
    monkeypatch.setattr(cna, 'fold_conv_bn', _counting(cna.fold_conv_bn, calls, 'fold'))
    block = randomize_norms_(ConvNormAct(2, 64, 64, 3, padding=1, norm_cfg='BN'), seed=3).eval()
    x = torch.randn(1, 64, 3, 5)
    if layout == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    x64 = x.double()
    with torch.no_grad():
        out = block(x)
        ref = float64_copy(block)(x64)
        with fast_paths(False):
            plain = block(x)
    assert (calls['fold'] > 0) == (layout == 'channels_last')
    assert_close_to_reference(out, plain, ref, what=f'eval ConvNormAct ({layout})')


def test_bn_fold_under_mmengine_ema_hook(tmp_path):
    """A real short mmengine run with EMAHook: validation must score the EMA weights the hook
    swaps in with ``p.data.copy_`` (which bumps no tensor version)."""
    from mmengine.evaluator import BaseMetric
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Tiny(BaseModel):
        def __init__(self):
            super().__init__()
            self.block = ConvNormAct(2, 3, 8, 3, padding=1, norm_cfg=dict(type='BN'))
            self.head = nn.Conv2d(8, 1, 1)

        def forward(self, inputs, target=None, mode='tensor'):
            y = self.head(self.block(inputs))
            if mode == 'loss':
                return dict(loss=F.mse_loss(y, target))
            return [y]

    class Dummy(BaseMetric):
        def process(self, data_batch, data_samples):
            self.results.append(0.0)

        def compute_metrics(self, results):
            return dict(dummy=0.0)

    probe = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    checks: List[tuple] = []

    class Probe(Hook):
        priority = 'LOWEST'

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            with torch.no_grad():  # an eval forward on the training weights (e.g. a logger)
                runner.model.eval()
                runner.model(probe)
                runner.model.train()

        def before_val_epoch(self, runner):  # runs after EMAHook swapped the EMA weights in
            model = runner.model.eval()
            with torch.no_grad():
                fast = model(probe)[0]
                with fast_paths(False):
                    plain = model(probe)[0]
            checks.append((fast, plain, copy.deepcopy(model.block.conv.weight.detach())))

    gen = torch.Generator().manual_seed(0)
    data = [dict(inputs=torch.randn(3, 8, 8, generator=gen),
                 target=torch.randn(1, 8, 8, generator=gen)) for _ in range(8)]
    loader = dict(dataset=data, batch_size=4, sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='default_collate'))
    runner = Runner(
        model=Tiny(), work_dir=str(tmp_path), train_dataloader=loader, val_dataloader=loader,
        val_evaluator=dict(type=Dummy), optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5)),
        train_cfg=dict(by_epoch=False, max_iters=6, val_interval=2), val_cfg=dict(),
        custom_hooks=[dict(type='EMAHook', momentum=0.5), Probe()],
        default_hooks=dict(logger=None, checkpoint=None), default_scope='mmengine',
        log_level='WARNING', visualizer=dict(type='Visualizer', vis_backends=[]))
    runner.train()
    assert len(checks) == 3
    for fast, plain, _ in checks:
        torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    trained = runner.model.block.conv.weight.detach()
    assert not torch.allclose(checks[-1][2], trained), 'validation did not see the EMA weights'


def test_instance_stats_are_safe_in_float16():
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(1, 2, 64, 64, 64, generator=gen) * 10 + 3).half()  # sum of squares ~2.6e7
    ref_var, ref_mean = torch.var_mean(x.double(), dim=(2, 3, 4), correction=0)
    for layout in (torch.contiguous_format, torch.channels_last_3d):
        mean, inv_std = instance_stats(x.contiguous(memory_format=layout), 1e-5)
        assert torch.isfinite(inv_std).all()
        torch.testing.assert_close(mean.double(), ref_mean.flatten(), rtol=0, atol=1e-2)
        torch.testing.assert_close(inv_std.double(), (ref_var.flatten() + 1e-5).rsqrt(),
                                   rtol=1e-3, atol=0)
    norm = nn.InstanceNorm3d(2, affine=True)
    with torch.no_grad():
        norm.bias.fill_(0.5)
        y = instance_norm_act_(x.clone(), norm)
        ref = F.instance_norm(x.double(), weight=norm.weight.double(), bias=norm.bias.double())
    assert torch.isfinite(y).all()
    # float16 keeps 11 bits: the normalised values (|y| < 6) within a few ulps
    torch.testing.assert_close(y.double(), ref, rtol=0, atol=2e-2)
    assert float((y.double() - 0.5).abs().mean()) > 0.5  # not collapsed to the bias


def test_volumetric_path_declines_half_precision_and_autocast():
    torch.manual_seed(0)
    block = ResBlock(3, 2, 4).eval()
    x = torch.randn(1, 2, 8, 8, 8)
    with torch.inference_mode(), fast_inference():
        assert volumetric.is_fast_inference(x)
        assert not volumetric.is_fast_inference(x.half())
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert not volumetric.is_fast_inference(x)
            y = block(x)
        ref = float64_copy(block)(x.double())
    assert torch.isfinite(y).all()
    assert float((y.double() - ref).norm() / ref.norm()) < 5e-2


@pytest.mark.parametrize('fn', ['skip_padding', 'polyphase'])
def test_fast_path_functions_differentiate_under_autocast(fn):
    """Called directly under autocast, the custom autograd Functions save and differentiate
    the cast tensors (they used to keep the fp32 inputs and fail in convolution_backward)."""
    from densekit.layers import conv_polyphase, conv_skip_padding, zone_plan

    torch.manual_seed(0)
    groups = 1 if fn == 'skip_padding' else 8
    x = torch.randn(2, 8, 20, 24, requires_grad=True)
    w = torch.randn(8, 8 // groups, 3, 3, requires_grad=True)
    b = torch.randn(8, requires_grad=True)
    grads = []
    for plain in (False, True):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            if plain:
                y = F.conv2d(x, w, b, 1, 6, 6, groups)
            elif fn == 'skip_padding':
                y = conv_skip_padding(x, w, b, zone_plan((20, 24), (3, 3), (6, 6), (6, 6)),
                                      (6, 6), (6, 6))
            else:
                y = conv_polyphase(x, w, b, (6, 6), groups)
        assert y.dtype == torch.bfloat16
        grads.append(torch.autograd.grad(y.float().square().sum(), (x, w, b)))
    for g, r in zip(*grads):
        torch.testing.assert_close(g, r, rtol=3e-2, atol=3e-2 * float(r.abs().max()))


def test_sparse_tap_convs_take_channels_last_and_match_float64(monkeypatch):
    # the benchmark's single-conv rows (quick: channels / 8): rate 36 on 64x64 (39 % of the taps
    # in bounds) and the 3D rate-12 conv (30 %) run on a channels-last copy; rate 24 (56 %)
    # stays plain. Forward and both gradients against float64.
    from benchmarks.necks import _conv_cases

    calls = {'cl': 0}
    monkeypatch.setattr(accel_conv, 'conv_channels_last',
                        _counting(accel_conv.conv_channels_last, calls, 'cl'))
    for case in _conv_cases(quick=True):
        conv = case.ours.conv
        x = case.inputs[0].clone().requires_grad_()
        before = calls['cl']
        out = case.ours([x])
        sparse = taps.sparse_tap_plan(x, conv.weight, conv.stride, conv.padding,
                                      conv.dilation, conv.groups)
        assert (calls['cl'] > before) == sparse == ('rate 24' not in case.name), case.name
        assert out.is_contiguous(), case.name  # NCHW / NCDHW back, as torch's conv returns
        grad = torch.randn_like(out)
        gx, gw = torch.autograd.grad(out, (x, conv.weight), grad)
        x_plain = case.inputs[0].clone().requires_grad_()
        plain = case.peer([x_plain])
        px, pw = torch.autograd.grad(plain, (x_plain, case.peer.conv.weight), grad)
        peer64 = float64_copy(case.peer)
        x64 = case.inputs[0].double().requires_grad_()
        ref = peer64([x64])
        rx, rw = torch.autograd.grad(ref, (x64, peer64.conv.weight), grad.double())
        assert_close_to_reference(out, plain, ref, what=f'{case.name} forward')
        assert_close_to_reference(gx, px, rx, what=f'{case.name} input grad')
        terms = x.shape[0] * math.prod(out.shape[2:])
        assert_close_to_reference(gw, pw, rw, terms=terms, what=f'{case.name} weight grad')
