"""Every registered densekit class, built from a table of minimal arguments, through every
execution mode: fp32 forward+backward, bf16 autocast, every fast path off, float64, eval, and a
``torch.jit.trace`` that must generalise to a second input size.

Tolerances (each justified, none tuned on one CPU):

* fast paths vs plain ops, fp32: :func:`~tests.helpers.numerics.assert_close_to_reference`
  against the same module in float64 (where :mod:`densekit.accel` runs the plain ops): densekit's
  error may be 4x torch's own plus 16 ulps of the largest value;
* bf16 autocast vs fp32: relative L2 error ``||a - b|| / ||b||``. bfloat16 keeps 8 significant
  bits (unit roundoff 2^-9 = 2e-3); a chain of ~30 rounded ops with independent errors gives
  ~sqrt(30) x 2e-3 = 1.1e-2, and normalisation layers amplify it by up to their gain, so
  outputs must agree within 5e-2 and gradients (one more chain of the same length, through
  the same normalisations) within 1e-1; two documented exceptions (instance norm on 64-voxel
  maps, top-k masks) get wider bounds. Under autocast the dispatcher runs the plain ops, so
  the fast-paths-off run must give the identical result;
* the trace replays the plain ops, so at the second size it must equal eager with the fast
  paths off exactly (``torch.equal``) and eager with them on within the float64 yardstick.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

import densekit  # noqa: F401  (registers everything)
from densekit import registry
from densekit.accel import fast_paths, taps
from tests.helpers.numerics import (
    assert_close_to_reference,
    float64_copy,
    randomize_norms_,
    torch_threads,
)

BF16_OUT_TOL = 5e-2
BF16_GRAD_TOL = 1e-1
# Instance norm (always batch statistics) at the deepest level of a 16^3 test volume
# normalises each channel by a spread estimated from 4^3 = 64 voxels, and its backward divides
# by that spread again: bf16 rounding of the spread enters the gradient twice (measured 0.26-0.29
# with the fast paths on and off alike, i.e. in torch's own ops).
IN_GRAD_TOL = 0.35
# DRSformer's top-k attention masks are discontinuous: bf16 rounding of the scores changes which
# entries are kept (measured 0.13, identical with the fast paths off).
TOPK_GRAD_TOL = 0.2

# Registries whose entries are not nn.Modules taking tensors: walked by their own tests.
NOT_MODULES = {
    'DATASETS': 'datasets (tests/test_*_data.py)',
    'TRANSFORMS': 'data transforms (tests/test_*_data.py, test_augment.py)',
    'METRICS': 'metrics (tests/test_*_metrics.py)',
    'DATA_SAMPLERS': 'batch samplers (tests/tasks/restoration/test_multiscale.py)',
    'HOOKS': 'runner hooks (tests/test_tools.py, test_restoration_train.py)',
    'VISBACKENDS': 'visualisation backends',
    'OPTIM_WRAPPERS': 'optimizer wrappers (AMP)',
    'MODEL_WRAPPERS': 'DDP wrappers: need a process group (DDP tests)',
}


@dataclasses.dataclass
class Case:
    """How to build and feed one registered class."""

    build: Callable[[], nn.Module]
    inputs: Callable[[Tuple[int, ...], torch.Generator], tuple]
    sizes: Tuple[Tuple[int, ...], Tuple[int, ...]] = ((32, 32), (24, 40))
    run: Optional[Callable[[nn.Module, tuple], Any]] = None
    backward: Union[bool, str] = True   # str: why there is nothing to differentiate
    trace: Union[bool, str] = True      # str: why a trace at a second size cannot hold
    # str: why a training forward updates buffers its own training output depends on (token
    # centres updated by k-means + EMA). The walk then restores the buffers before every
    # training-mode run, so the runs it compares start from the same state, and checks that
    # a training forward does change them (eval must not).
    stateful_train: str = ''
    bf16_out_tol: float = BF16_OUT_TOL
    bf16_grad_tol: float = BF16_GRAD_TOL


def img(channels: int, batch: int = 2) -> Callable:
    def make(size: Tuple[int, ...], gen: torch.Generator) -> tuple:
        return (torch.randn(batch, channels, *size, generator=gen),)
    return make


def pyramid(channels: Sequence[int], strides: Sequence[int], batch: int = 2) -> Callable:
    def make(size: Tuple[int, ...], gen: torch.Generator) -> tuple:
        return ([torch.randn(batch, c, *(-(-s // st) for s in size), generator=gen)
                 for c, st in zip(channels, strides)],)
    return make


def build(cfg: dict) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        with DefaultScope.overwrite_default_scope('densekit'):
            return registry.MODELS.build(ConfigDict(cfg))
    return make


def seg_head(type_: str, channels: Sequence[int], strides: Sequence[int], **kw: Any) -> Case:
    cfg = dict(type=type_, channels=8, num_classes=3, norm_cfg=dict(type='BN'),
               dropout_ratio=0.0, **kw)
    return Case(build(cfg), pyramid(channels, strides))


def restoration_head(type_: str, in_channels: int, **kw: Any) -> Case:
    def make(size: Tuple[int, ...], gen: torch.Generator) -> tuple:
        return (torch.randn(2, in_channels, *size, generator=gen),
                torch.randn(2, kw.get('out_channels', 3), *size, generator=gen))
    return Case(build(dict(type=type_, in_channels=in_channels, **kw)), make)


def loss_case(type_: str, spatial: int, **kw: Any) -> Case:
    def make(size: Tuple[int, ...], gen: torch.Generator) -> tuple:
        pred = torch.randn(2, 3, *size, generator=gen)
        if type_ == 'DiceCELoss':
            return pred, torch.randint(0, 3, (2, *size), generator=gen)
        return pred, torch.randn(2, 3, *size, generator=gen)
    sizes = ((8, 8, 8), (6, 10, 8)) if spatial == 3 else ((16, 16), (12, 20))
    return Case(build(dict(type=type_, **kw)), make, sizes=sizes,
                run=lambda m, a: m(*a))


def preprocessor_case(type_: str, channels: int, spatial: int, **kw: Any) -> Case:
    def make(size: Tuple[int, ...], gen: torch.Generator) -> tuple:
        images = [torch.randint(0, 255, (channels, *size), generator=gen).float()
                  for _ in range(2)]
        return (dict(inputs=images, data_samples=[BaseDataElement() for _ in images]),)
    sizes = ((8, 8, 8), (6, 10, 8)) if spatial == 3 else ((16, 16), (12, 20))
    return Case(build(dict(type=type_, **kw)), make, sizes=sizes,
                run=lambda m, a: m(a[0], False)['inputs'],
                backward='a data preprocessor has no parameters and no differentiable input',
                trace='takes a dict of data samples, not tensors')


SIZES_3D = ((16, 16, 16), (16, 24, 8))
SIZES_32 = ((32, 32), (64, 96))  # patchify downsampling: multiples of the total stride
TINY = dict(depths=[1, 1, 1, 1], widths=[8, 16, 24, 32])
RESTORER = dict(type='Restorer', scale=2, backbone=dict(type='EDSRBody', channels=8, num_blocks=1),
                head=dict(type='PixelShuffleHead', in_channels=8, scale=2),
                pixel_loss=dict(type='PixelL1Loss'))
SEGMENTOR = dict(type='MedicalSegmentor',
                 backbone=dict(type='ResUNetEncoder', in_channels=1, widths=[4, 8, 16],
                               depths=[1, 1, 1]),
                 decode_head=dict(type='UNetDecoderHead', in_channels=[4, 8, 16], num_classes=2),
                 test_cfg=dict(roi_size=(16, 16, 16)))

CASES: Dict[str, Case] = {
    # necks and heads
    'ASPP': Case(build(dict(type='ASPP', in_channels=[4, 16], channels=8,
                            dilations=(1, 6, 12, 18))), pyramid([4, 16], [1, 1])),
    'ASPPHead': seg_head('ASPPHead', [16], [1], in_channels=16, dilations=(1, 12, 24, 36)),
    'DepthwiseSeparableASPPHead': seg_head(
        'DepthwiseSeparableASPPHead', [4, 16], [1, 4], in_channels=16, in_index=1,
        c1_in_channels=4, c1_channels=6, dilations=(1, 2, 3, 4)),
    'FCNHead': seg_head('FCNHead', [16], [1], in_channels=16, dilation=6),
    'FPNHead': seg_head('FPNHead', [8] * 4, [1, 2, 4, 8], in_channels=[8] * 4,
                        in_index=[0, 1, 2, 3], feature_strides=[4, 8, 16, 32]),
    'DUCHead': seg_head('DUCHead', [16], [1], in_channels=16, upsample_factor=4),
    'LRASPPHead': seg_head('LRASPPHead', [8, 12, 16], [1, 2, 4], in_channels=[8, 12, 16],
                           in_index=[0, 1, 2], branch_channels=(4, 6), clamp_pool=True),
    'FPN': Case(build(dict(type='FPN', in_channels=[8, 16, 32], out_channels=8, num_outs=4)),
                pyramid([8, 16, 32], [1, 2, 4])),
    'RCNet': Case(build(dict(type='RCNet', in_channels=[8, 16, 32], out_channels=16,
                             num_outs=4)), pyramid([8, 16, 32], [1, 2, 4])),
    'SEPC': Case(build(dict(type='SEPC', in_channels=8, num_levels=4, num_pconvs=2)),
                 pyramid([8] * 4, [1, 2, 4, 8])),
    'JPU': Case(build(dict(type='JPU', in_channels=(8, 16, 32), mid_channels=8)),
                pyramid([8, 16, 32], [1, 2, 4])),
    'PIIPInteraction': Case(
        build(dict(type='PIIPInteraction', dims=(16, 8), num_heads=2)),
        lambda size, gen: (torch.randn(2, size[0] * size[1] // 64, 16, generator=gen),
                           (size[0] // 8, size[1] // 8),
                           torch.randn(2, size[0] * size[1] // 16, 8, generator=gen),
                           (size[0] // 4, size[1] // 4)),
        trace='the grid sizes are Python ints, constants in a trace'),
    'PIIPSimplePyramid': Case(build(dict(type='PIIPSimplePyramid', in_channels=32)), img(32),
                              sizes=((4, 4), (3, 5))),
    'UNetDecoderHead': Case(build(dict(type='UNetDecoderHead', in_channels=[4, 8, 16],
                                       num_classes=2)),
                            pyramid([4, 8, 16], [1, 2, 4]), sizes=SIZES_3D),
    # blocks
    'DCLSConv': Case(build(dict(type='DCLSConv', spatial_dims=2, in_channels=4, out_channels=8,
                                kernel_count=4, dilated_kernel_size=5)), img(4)),
    'DilatedReparamBlock': Case(build(dict(type='DilatedReparamBlock', spatial_dims=2,
                                           channels=8, kernel_size=7)), img(8)),
    'ECA': Case(build(dict(type='ECA', spatial_dims=2, channels=8)), img(8)),
    'FADConv': Case(build(dict(type='FADConv', spatial_dims=2, in_channels=4, out_channels=8,
                               dilation=2)), img(4)),
    'LargeKernelResBlock': Case(build(dict(type='LargeKernelResBlock', channels=8,
                                           kernel_size=7)), img(8)),
    'PConv': Case(build(dict(type='PConv', spatial_dims=2, channels=8)), img(8)),
    'SPDConv': Case(build(dict(type='SPDConv', spatial_dims=2, in_channels=4,
                               out_channels=8)), img(4)),
    'scSE': Case(build(dict(type='scSE', spatial_dims=2, channels=8)), img(8)),
    'InceptionDWConv': Case(build(dict(type='InceptionDWConv', spatial_dims=2, channels=16,
                                       band_kernel_size=5)), img(16)),
    # backbones
    'ConvNeXt': Case(build(dict(type='ConvNeXt', arch=TINY)), img(3), sizes=SIZES_32),
    'FasterNet': Case(build(dict(type='FasterNet', arch=TINY, drop_path_rate=0.0)), img(3),
                      sizes=SIZES_32),
    'InceptionNeXt': Case(build(dict(type='InceptionNeXt', arch=dict(
        depths=[1, 1, 1, 1], widths=[16, 16, 24, 32]))), img(3), sizes=SIZES_32),
    'RapidNet': Case(build(dict(type='RapidNet', arch=dict(
        depths=[1, 1, 1, 1], widths=[8, 16, 24, 32], mldc_blocks=[0, 0, 1, 1]))), img(3),
        sizes=SIZES_32),
    'UniRepLKNet': Case(build(dict(type='UniRepLKNet', arch=dict(
        depths=[1, 1, 1, 1], widths=[8, 16, 24, 32],
        kernel_sizes=[[3], [7], [7], [3]]))), img(3), sizes=SIZES_32),
    'ResNetHDC': Case(build(dict(type='ResNetHDC', depth=18, base_channels=8, stem_channels=8,
                                 hdc_dilations=[None, None, [1, 2], [1, 2]],
                                 strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4))), img(3)),
    'HighResSkips': Case(build(dict(type='HighResSkips', backbone=dict(
        type='FasterNet', arch=TINY, drop_path_rate=0.0), skip_channels=(4,))), img(3),
        sizes=SIZES_32),
    'PIIP': Case(build(dict(type='PIIP', branches=[
        dict(type='mmseg.VisionTransformer', img_size=32, patch_size=16, embed_dims=32,
             num_layers=2, num_heads=2, mlp_ratio=2, final_norm=True),
        dict(type='mmseg.VisionTransformer', img_size=64, patch_size=16, embed_dims=16,
             num_layers=2, num_heads=2, mlp_ratio=2, final_norm=True)],
        resolutions=[32, 64], num_interactions=1, interaction_cfg=dict(num_heads=2),
        out_channels=32)), img(3), sizes=((64, 64), (48, 80)),
        trace='resizes to fixed branch resolutions and crops by the int input size'),
    'DFormerEncoder': Case(build(dict(type='DFormerEncoder', in_channels=1, arch='tiny')),
                           img(1), sizes=((32, 32, 32), (32, 32, 64)),
                           trace='window partitioning reads the input shape as Python ints'),
    'ResUNetEncoder': Case(build(dict(type='ResUNetEncoder', in_channels=1, widths=[4, 8, 16],
                                      depths=[1, 1, 1])), img(1), sizes=SIZES_3D),
    'RevUNetEncoder': Case(build(dict(type='RevUNetEncoder', in_channels=1, widths=[4, 8, 16],
                                      depths=[1, 1, 1])), img(1), sizes=SIZES_3D,
                           bf16_grad_tol=IN_GRAD_TOL),
    'MeshNet': Case(build(dict(type='MeshNet', in_channels=1, channels=4, dilations=(1, 2, 1))),
                    img(1), sizes=SIZES_3D),
    # restoration
    'CARNBody': Case(build(dict(type='CARNBody', channels=8, num_blocks=1, num_units=1)),
                     img(3)),
    'CATANetBody': Case(
        build(dict(type='CATANetBody', dim=8, qk_dim=8, num_heads=2, hidden_dim=8,
                   num_centres=(4,), group_sizes=(64,), patch_sizes=(12,))), img(3),
        stateful_train='training steps run k-means on the token centres from their buffer',
        trace='token groups and LRSA patches are laid out from the input size as Python ints'),
    'CATANetHead': restoration_head('CATANetHead', 8, scale=2),
    'DRLNBody': Case(build(dict(type='DRLNBody', channels=8, groups=(1, 2), reduction=4)),
                     img(3)),
    'DRSformer': Case(build(dict(type='DRSformer', dim=8, num_blocks=(1, 1, 1, 1),
                                 heads=(1, 1, 2, 2))), img(3), bf16_grad_tol=TOPK_GRAD_TOL),
    'EDSRBody': Case(build(dict(type='EDSRBody', channels=8, num_blocks=1)), img(3)),
    'FSRCNNBody': Case(build(dict(type='FSRCNNBody', d=8, s=4, m=1)), img(1)),
    'ResUNet': Case(build(dict(type='ResUNet', channels=(8, 16), blocks=1)), img(3)),
    'SCNetBody': Case(build(dict(type='SCNetBody', channels=8, num_blocks=1)), img(3)),
    'RCLUTBody': Case(build(dict(type='RCLUTBody', scale=2, rc_size=3, rc_features=4,
                                 unit_features=8, dense_layers=1)),
                      lambda size, gen: (torch.rand(2, 1, *size, generator=gen),)),
    # bilinear: the bicubic skip (imresize_tensor, shared with the other heads) does not
    # replay bit-exactly in a trace at a second size (4.8e-7)
    'PixelShuffleSkipHead': Case(build(dict(type='PixelShuffleSkipHead', scale=2,
                                            input_skip='bilinear')),
                                 lambda size, gen: (torch.randn(2, 4, *size, generator=gen),
                                                    torch.randn(2, 1, *size, generator=gen))),
    'DeconvHead': restoration_head('DeconvHead', 8, scale=2, out_channels=1),
    'PixelShuffleHead': restoration_head('PixelShuffleHead', 8, scale=2),
    'ReconstructionHead': restoration_head('ReconstructionHead', 8),
    'ShiftUpsampleHead': restoration_head('ShiftUpsampleHead', 8, scale=2),
    'Restorer': Case(build(RESTORER), img(3), run=lambda m, a: m(a[0], mode='tensor')),
    'MedicalSegmentor': Case(build(SEGMENTOR), img(1), sizes=SIZES_3D,
                             run=lambda m, a: m(a[0], mode='tensor'), bf16_grad_tol=IN_GRAD_TOL),
    # losses and preprocessors
    'PixelL1Loss': loss_case('PixelL1Loss', 2),
    'CharbonnierLoss': loss_case('CharbonnierLoss', 2),
    'DiceCELoss': loss_case('DiceCELoss', 3),
    'RestorationPreprocessor': preprocessor_case('RestorationPreprocessor', 3, 2),
    'MedicalDataPreprocessor': preprocessor_case('MedicalDataPreprocessor', 1, 3),
    'KorniaSegDataPreProcessor': preprocessor_case('KorniaSegDataPreProcessor', 3, 2),
}


def test_every_registry_is_walked_or_named():
    walked = {'MODELS'}
    for name in registry.__all__:
        reg = getattr(registry, name)
        if name == 'SCOPE' or not reg.module_dict:
            continue
        assert name in walked or name in NOT_MODULES, \
            f'registry {name} ({sorted(reg.module_dict)}) is neither walked nor skipped'


def test_table_covers_every_registered_model():
    registered = set(registry.MODELS.module_dict)
    missing, stale = sorted(registered - set(CASES)), sorted(set(CASES) - registered)
    assert not missing, f'registered but missing from the walk table: {missing}'
    assert not stale, f'in the walk table but not registered: {stale}'


# -- the walk -----------------------------------------------------------------------------------
def _tensors(obj: Any) -> List[Tensor]:
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return []


def _forward(case: Case, model: nn.Module, args: tuple) -> List[Tensor]:
    out = case.run(model, args) if case.run is not None else model(*args)
    return [t for t in _tensors(out) if t.is_floating_point()]


def _leaves(args: tuple) -> List[Tensor]:
    return [t for t in _tensors(args) if t.is_floating_point()]


def _fwd_bwd(case: Case, model: nn.Module, args: tuple,
             weights: Optional[List[Tensor]] = None) -> Tuple[List[Tensor], List[Tensor]]:
    """Outputs and gradients (inputs, then parameters) of ``sum(w * out)``."""
    leaves = [t.requires_grad_() for t in _leaves(args)]
    outs = _forward(case, model, args)
    if case.backward is not True:
        return [o.detach() for o in outs], []
    if weights is None:
        gen = torch.Generator().manual_seed(1)
        weights = [torch.randn(o.shape, generator=gen) for o in outs]
    loss = sum((o.float() * w.to(o.device, torch.float32 if o.dtype != torch.float64
                                  else torch.float64)).sum() for o, w in zip(outs, weights))
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, leaves + params, allow_unused=True)
    kept = [g.detach() if g is not None else torch.zeros_like(t)
            for g, t in zip(grads, leaves + params)]
    return [o.detach() for o in outs], kept


def _relative_l2(a: List[Tensor], b: List[Tensor]) -> float:
    num = sum(float((x.double() - y.double()).square().sum()) for x, y in zip(a, b))
    den = sum(float(y.double().square().sum()) for y in b)
    return (num / den) ** 0.5 if den > 0 else num ** 0.5


def _snapshot(model: nn.Module) -> Dict[str, Tensor]:
    return {name: b.detach().clone() for name, b in model.named_buffers()}


def _restore(case: Case, model: nn.Module, state: Dict[str, Tensor]) -> nn.Module:
    """Put back the buffers of a ``stateful_train`` case (dtype of ``model`` kept)."""
    if case.stateful_train:
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(state[name])
    return model


def _inputs(case: Case, which: int) -> tuple:
    gen = torch.Generator().manual_seed(100 + which)
    return case.inputs(case.sizes[which], gen)


def _copy(args: tuple) -> tuple:
    def clone(obj: Any) -> Any:
        if isinstance(obj, Tensor):
            return obj.detach().clone()
        if isinstance(obj, dict):
            return {k: clone(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(clone(v) for v in obj)
        return obj
    return clone(args)


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(autouse=True)
def _tiny_convs_skip_taps(monkeypatch):
    # the test maps are tiny: let every eligible conv take the tap-skipping path
    monkeypatch.setattr(taps, 'SKIP_MIN_MACS', 0)


@pytest.mark.parametrize('name', sorted(CASES))
def test_registered_module_in_every_mode(name: str) -> None:
    case = CASES[name]
    torch.manual_seed(0)
    model = case.build()
    randomize_norms_(model)
    args = _inputs(case, 0)

    # fp32 train (fast paths on) against the plain ops and a float64 reference
    model.train()
    state = _snapshot(model)
    out, grads = _fwd_bwd(case, model, _copy(args))
    if case.stateful_train:
        assert any(not torch.equal(b, state[n]) for n, b in model.named_buffers()), \
            f'{name} declares stateful_train but a training forward changed no buffer'
    with fast_paths(False):
        out_plain, grads_plain = _fwd_bwd(case, _restore(case, model, state), _copy(args))
    model64 = _restore(case, float64_copy(model), state)
    out64, grads64 = _fwd_bwd(case, model64, float64_copy(_copy(args)))
    assert out, f'{name} returned no floating-point tensor'
    assert all(torch.isfinite(o).all() for o in out + grads)
    assert_close_to_reference(out, out_plain, out64, what=f'{name} train output')
    # a gradient that is zero in exact arithmetic (a conv bias before a training BatchNorm)
    # is measured in ulps of the largest gradient, not of its own rounding noise
    top = max((float(g.abs().max()) for g in grads64 if g.numel()), default=0.0)
    assert_close_to_reference(grads, grads_plain, grads64, scale=top,
                              what=f'{name} train grads')
    if case.backward is True:
        assert any(float(g.abs().sum()) > 0 for g in grads), f'{name}: all gradients are zero'

    # bf16 autocast, fast paths on and off, against fp32. In train mode only the outputs are
    # compared: batch statistics of BatchNorm over the tiny test maps (a 1x1 map at stride 32
    # with batch 2) make the gradients arbitrarily ill-conditioned, in torch's ops as much as
    # in densekit's. The gradients are compared in eval mode (running statistics).
    for enabled in (True, False):
        with fast_paths(enabled), torch.autocast('cpu', dtype=torch.bfloat16):
            out16, grads16 = _fwd_bwd(case, _restore(case, model, state), _copy(args))
        err = _relative_l2(out16, out)
        assert err <= case.bf16_out_tol, \
            f'{name} train bf16 output off fp32 by {err:.3g} (fast={enabled})'
        assert all(torch.isfinite(g).all() for g in grads16), f'{name}: bf16 gradient not finite'
    model.eval()
    trained = _snapshot(model)
    out, grads = _fwd_bwd(case, model, _copy(args))
    if case.stateful_train:
        assert all(torch.equal(b, trained[n]) for n, b in model.named_buffers()), \
            f'{name}: an eval forward changed a buffer'
    results = []
    for enabled in (True, False):
        with fast_paths(enabled), torch.autocast('cpu', dtype=torch.bfloat16):
            out16, grads16 = _fwd_bwd(case, model, _copy(args))
        results.append(out16 + grads16)
        err = _relative_l2(out16, out)
        assert err <= case.bf16_out_tol, \
            f'{name} eval bf16 output off fp32 by {err:.3g} (fast={enabled})'
        if grads:
            gerr = _relative_l2(grads16, grads)
            assert gerr <= case.bf16_grad_tol, \
                f'{name} eval bf16 gradients off fp32 by {gerr:.3g} (fast={enabled})'
    assert all(torch.equal(a, b) for a, b in zip(*results)), \
        f'{name}: under autocast the fast-paths-on run differs from the plain ops'

    # eval without autograd: where most fast paths live (BN folding, channels-last, in place)
    model.eval()
    model64 = float64_copy(model)
    with torch.no_grad():
        ev = _forward(case, model, _copy(args))
        with fast_paths(False):
            ev_plain = _forward(case, model, _copy(args))
        ev64 = _forward(case, model64, float64_copy(_copy(args)))
    assert_close_to_reference(ev, ev_plain, ev64, what=f'{name} eval output')

    # a trace at one size replays the plain ops at another
    if case.trace is True:
        args2 = _inputs(case, 1)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            traced = torch.jit.trace(model, _copy(args), check_trace=False, strict=False)
            got = _tensors(traced(*_copy(args2)))
            with fast_paths(False):
                want = _forward(case, model, _copy(args2))
            fast = _forward(case, model, _copy(args2))
            ref64 = _forward(case, model64, float64_copy(_copy(args2)))
        assert [g.shape for g in got] == [w.shape for w in want]
        for g, w in zip(got, want):
            assert torch.equal(g, w), f'{name}: trace at {case.sizes[0]} run at ' \
                f'{case.sizes[1]} differs from eager by {float((g - w).abs().max()):.3g}'
        assert_close_to_reference(fast, want, ref64, what=f'{name} eval at second size')
