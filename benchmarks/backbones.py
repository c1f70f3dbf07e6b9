"""Benchmark suite ``backbones``: size, compute and CPU speed of the seed-paper backbones.

Backbones of the smallest published class, chosen to have similar sizes (backbone parameters,
no classification head):

=====================  =========================================================
ConvNeXt-atto          3.4M, 7x7 depthwise convs (the reference)
InceptionNeXt-atto     2.9M, Inception depthwise conv (3x3 + 1x9 + 9x1 + identity)
UniRepLKNet-atto       large dilated re-parameterisable kernels; inference in deploy form
FasterNet-T0           2.2M, partial convolutions (the smallest FasterNet)
RapidNet-tiny          multi-level dilated convs; inference in deploy form
=====================  =========================================================

For each at 224x224 (batch 1 and 8) and 512x512 (batch 1): parameters, GFLOPs per image
(multiply-adds of convolutions and matmuls counted by ``torch.utils.flop_counter``, halved so
one multiply-add = one FLOP as the papers count), CPU images/s for a forward pass (eval,
``torch.inference_mode``) and for forward + backward (train mode, loss = sum of the level
means), and the peak tensor memory of each (:func:`benchmarks.harness.peak_memory_mb`).
``densekit s`` is the forward time of one batch; ``densekit MiB`` its peak memory.

Then the seed papers' efficiency claims, each measured here with the paper's claim beside it
(``densekit s`` / ``peer s`` are the two models' times and ``ratio`` their quotient):

* InceptionNeXt-T vs ConvNeXt-T, training throughput at 224 (paper: 1.6x on A100, +0.2% top-1);
* FasterNet vs a ConvNeXt of similar ImageNet accuracy, CPU inference (paper: FasterNet runs
  faster on CPU than other networks of its accuracy);
* UniRepLKNet-atto deploy form vs its training structure, inference (re-parameterisation must
  make inference cheaper, with identical outputs).

``quick=True`` runs every backbone once at 64x64, batch 1 (a smoke check for the tests).
Run: ``python tools/benchmark.py backbones --repeats 5``.
"""
from __future__ import annotations

import copy
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from benchmarks.harness import Row, peak_memory_mb, suite, time_pair
from densekit.analysis.flops import call_flops

__all__ = ['backbones_suite', 'count_gflops', 'BACKBONES']

# (label, config, has a deploy form)
BACKBONES: List[Tuple[str, dict, bool]] = [
    ('ConvNeXt-atto', dict(type='densekit.ConvNeXt', arch='atto'), False),
    ('InceptionNeXt-atto', dict(type='densekit.InceptionNeXt', arch='atto'), False),
    ('UniRepLKNet-atto', dict(type='densekit.UniRepLKNet', arch='atto'), True),
    ('FasterNet-T0', dict(type='densekit.FasterNet', arch='t0'), False),
    ('RapidNet-tiny', dict(type='densekit.RapidNet', arch='tiny'), True),
]


def _available(cfg: dict) -> bool:
    from densekit.registry import MODELS

    try:
        MODELS.get(cfg['type'])
    except KeyError:
        return False
    return MODELS.get(cfg['type']) is not None


def _build(cfg: dict, seed: int = 0) -> nn.Module:
    from densekit.registry import MODELS

    torch.manual_seed(seed)
    return MODELS.build(copy.deepcopy(cfg))


def _deployed(model: nn.Module) -> nn.Module:
    """An eval-mode copy in deploy form (re-parameterised, BatchNorm folded)."""
    deployed = copy.deepcopy(model).eval()
    for name in ('switch_to_deploy', 'reparameterize'):
        if hasattr(deployed, name):
            getattr(deployed, name)()
            break
    return deployed


def _randomize_bn(model: nn.Module) -> None:
    """Non-trivial BatchNorm statistics, so folding and deploy forms are really exercised."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def count_gflops(model: nn.Module, x: torch.Tensor) -> float:
    """Forward GFLOPs per image, one multiply-add = one FLOP (as the papers report)."""
    with torch.no_grad():
        flops = call_flops(lambda: model(x))
    return flops / 2 / x.shape[0] / 1e9


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _infer_fn(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            return model(x)
    return run


def _train_fn(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    params = [p for p in model.parameters() if p.requires_grad]

    def run() -> object:
        for p in params:
            p.grad = None
        loss = sum(o.mean() for o in model(x))
        loss.backward()
        return loss
    return run


def _measure(infer: nn.Module, train: nn.Module, x: torch.Tensor, repeats: int,
             memory: bool) -> Dict[str, Optional[float]]:
    f_inf, f_train = _infer_fn(infer, x), _train_fn(train, x)
    t_inf, t_train = time_pair(f_inf, f_train, repeats=repeats)
    out: Dict[str, Optional[float]] = dict(t_inf=t_inf, t_train=t_train, m_inf=None,
                                           m_train=None)
    if memory:
        out['m_inf'] = peak_memory_mb(f_inf)
        # start from no gradients: otherwise freeing the last step's gradients inside the
        # measured step is counted against its activations (the peak then reads near zero)
        for p in train.parameters():
            p.grad = None
        out['m_train'] = peak_memory_mb(f_train)
    return out


def _progress(row: Row) -> None:
    times = f'{row.densekit_s:.3f} s' + (f' vs {row.peer_s:.3f} s' if row.peer_s else '')
    mem = f', {row.densekit_mem_mb:.1f} MiB' if row.densekit_mem_mb else ''
    extra = ', '.join(f'{k} {v}' for k, v in row.extra.items() if v)
    print(f'  {row.case}: {times}{mem}, {extra}', flush=True)


def _claim_row(case: str, a: nn.Module, b: nn.Module, x: torch.Tensor, repeats: int,
               train: bool, paper: str, what: str) -> Row:
    """Row timing ``a`` (densekit s) against ``b`` (peer s) on the same input."""
    if train:
        a.train()
        b.train()
        fa, fb = _train_fn(a, x), _train_fn(b, x)
    else:
        fa, fb = _infer_fn(a.eval(), x), _infer_fn(b.eval(), x)
    ta, tb = time_pair(fa, fb, repeats=repeats)
    batch = x.shape[0]
    row = Row(case=case, densekit_s=ta, peer_s=tb, extra={
        'img/s fwd': f'{batch / ta:.1f} vs {batch / tb:.1f}' if not train else '',
        'img/s fwd+bwd': f'{batch / ta:.1f} vs {batch / tb:.1f}' if train else '',
        'claim': f'measured {what} {tb / ta:.2f}x; paper: {paper}'})
    _progress(row)
    return row


@suite('backbones')
def backbones_suite(repeats: int = 5, quick: bool = False) -> List[Row]:
    """Params, GFLOPs, images/s (forward, forward+backward) and peak memory per backbone."""
    # 512 px runs at batch 1 only: batch 8 at 512 px multiplies the suite's time on a shared
    # 2-core CPU (each training step of the larger backbones takes tens of seconds)
    cases = [(64, 1)] if quick else [(224, 1), (224, 8), (512, 1)]
    repeats = 1 if quick else repeats
    rows: List[Row] = []
    skipped = []
    for label, cfg, deploy in BACKBONES:
        if not _available(cfg):
            skipped.append(label)
            continue
        train_model = _build(cfg).train()
        _randomize_bn(train_model)
        infer_model = _deployed(train_model) if deploy else copy.deepcopy(train_model).eval()
        params = _params(train_model)
        for size, batch in cases:
            gflops = count_gflops(infer_model, torch.rand(1, 3, size, size))
            x = torch.rand(batch, 3, size, size)
            m = _measure(infer_model, train_model, x, repeats, memory=True)
            rows.append(Row(
                case=f'{label}{" (deploy)" if deploy else ""} {size}px b{batch}',
                densekit_s=m['t_inf'], densekit_mem_mb=m['m_inf'],
                extra={'params M': f'{params / 1e6:.2f}', 'GFLOPs': f'{gflops:.2f}',
                       'img/s fwd': f'{batch / m["t_inf"]:.1f}',
                       'img/s fwd+bwd': f'{batch / m["t_train"]:.1f}',
                       'train MiB': f'{m["m_train"]:.1f}'}))
            _progress(rows[-1])
    rows += _claims(repeats, quick)
    if skipped:
        print(f'not registered, skipped: {", ".join(skipped)}', flush=True)
    return rows


def _claims(repeats: int, quick: bool) -> List[Row]:
    rows: List[Row] = []
    size, batch = (64, 1) if quick else (224, 8)
    x = torch.rand(batch, 3, size, size)
    arch_t = 'atto' if quick else 'tiny'
    inc = _build(dict(type='densekit.InceptionNeXt', arch=arch_t))
    cnx = _build(dict(type='densekit.ConvNeXt', arch=arch_t))
    rows.append(_claim_row(
        f'InceptionNeXt-{arch_t} vs ConvNeXt-{arch_t} train {size}px b{batch}', inc, cnx, x,
        repeats, train=True, what='training speed-up',
        paper='1.6x training throughput (A100), +0.2% top-1'))
    rows.append(_claim_row(
        f'InceptionNeXt-{arch_t} vs ConvNeXt-{arch_t} infer {size}px b{batch}', inc, cnx, x,
        repeats, train=False, what='inference speed-up', paper='(training claim only)'))
    del inc, cnx
    # FasterNet-S (81.3% top-1) and ConvNeXt-T (82.1%): the closest pair by accuracy and
    # compute (4.56 vs 4.47 GFLOPs); quick mode uses the smallest of each
    pairs = [('t0', 'atto')] if quick else [('s', 'tiny')]
    for fast_arch, cnx_arch in pairs:
        fast = _build(dict(type='densekit.FasterNet', arch=fast_arch))
        cnx = _build(dict(type='densekit.ConvNeXt', arch=cnx_arch))
        _randomize_bn(fast)
        for b in ((1,) if quick else (1, batch)):
            xb = torch.rand(b, 3, size, size)
            rows.append(_claim_row(
                f'FasterNet-{fast_arch.upper()} vs ConvNeXt-{cnx_arch} infer {size}px b{b}',
                fast, cnx, xb, repeats, train=False, what='CPU inference speed-up',
                paper='faster on CPU at similar accuracy (81.3% vs 82.1% top-1)'))
    if _available(dict(type='densekit.UniRepLKNet')):
        uni = _build(dict(type='densekit.UniRepLKNet', arch='atto')).eval()
        _randomize_bn(uni)
        rows.append(_claim_row(
            f'UniRepLKNet-atto deploy vs train structure infer {size}px b{batch}',
            _deployed(uni), uni, x, repeats, train=False, what='deploy speed-up',
            paper='re-parameterised inference is cheaper, same outputs'))
    return rows
