"""``densekit bench necks``: densekit FPN / JPU / ASPPHead against mmdet FPN / mmseg JPU / mmseg
ASPPHead in one process, with identical weights and inputs; and single sparse-tap dilated convs
(ASPP's rates on its map size, 2D and 3D) through densekit's conv dispatcher against torch's
own conv, the measurement behind :data:`densekit.accel.taps.SPARSE_MAX_FRACTION`; and
densekit's Lite R-ASPP head against its ASPPHead on the same features (the paper's claim:
LR-ASPP is faster than R-ASPP at similar accuracy).

For each neck two rows: inference (eval, ``torch.inference_mode``, densekit's fast path) and a
training step (train mode, forward + backward of the summed outputs, inputs requiring grad as
when the backbone trains). Besides time and peak memory, each row shows the nominal work (the
peer's forward conv / matmul FLOPs counted by ``torch.utils.flop_counter``, x3 for a training
step) and the rate at which each implementation gets through it, also as a percentage of the
fp32 matmul rate measured in the same run (first row). densekit skips part of the nominal work
(kernel taps in the zero padding, the constant image-pool channels of ASPP), so its effective
rate can exceed what the hardware executes.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from benchmarks.harness import Row, measure_pair, randomize_norms_, resolve_device, suite
from densekit.analysis.flops import call_flops

__all__ = ['necks_suite', 'matmul_gflops']


@dataclass
class _Case:
    name: str
    ours: nn.Module
    peer: nn.Module
    inputs: List[Tensor]


def matmul_gflops(n: int = 2048, repeats: int = 5) -> Tuple[float, float]:
    """Median time (s) and GFLOP/s of an ``n x n`` fp32 matmul on this machine."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)
    times = []
    for _ in range(max(repeats, 5)):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return seconds, 2 * n ** 3 / seconds / 1e9


def _pyramid(batch: int, channels: Sequence[int], image: int, strides: Sequence[int],
             seed: int = 0) -> List[Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, math.ceil(image / s), math.ceil(image / s), generator=gen)
            for c, s in zip(channels, strides)]


def _pair(ours: nn.Module, peer: nn.Module) -> Tuple[nn.Module, nn.Module]:
    randomize_norms_(peer)
    ours.load_state_dict(peer.state_dict())
    return ours, peer


class _OneConv(nn.Module):
    """One zero-padded conv of the first map of a list, through densekit's conv dispatcher
    (``dispatch=True``: :func:`~densekit.accel.conv.conv_forward`) or torch's own module call."""

    def __init__(self, dispatch: bool, spatial_dims: int, cin: int, cout: int,
                 dilation: int) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.conv = conv(cin, cout, 3, padding=dilation, dilation=dilation, bias=False)
        self.dispatch = dispatch

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        if self.dispatch:
            from densekit.accel.conv import conv_forward
            return conv_forward(self.conv, inputs[0])
        return self.conv(inputs[0])


def _conv_cases(quick: bool) -> List[_Case]:
    """Sparse-tap convs (densekit's ``tap_skip`` dispatch vs torch): 2D 2048 -> 512 at 64x64
    with rates 36 (39 % of the taps in bounds) and 24 (56 %), 3D 128 -> 64 at 24^3 with rate 12
    (30 %); quick: channels / 8 (the same maps, so the same fractions of taps in bounds)."""
    cases = []
    div = 8 if quick else 1
    for dims, cin, cout, side, rate in ((2, 2048, 512, 64, 36), (2, 2048, 512, 64, 24),
                                        (3, 128, 64, 24, 12)):
        ours = _OneConv(True, dims, cin // div, cout // div, rate)
        peer = _OneConv(False, dims, cin // div, cout // div, rate)
        peer.load_state_dict(ours.state_dict())
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(2, cin // div, *(side,) * dims, generator=gen)
        size = 'x'.join([str(side)] * dims)
        cases.append(_Case(f'conv {cin // div}->{cout // div} 3x3 rate {rate} {size} (torch)',
                           ours, peer, [x]))
    return cases


def _cases(quick: bool) -> List[_Case]:
    from mmdet.models.necks import FPN as MMDetFPN
    from mmseg.models.decode_heads import ASPPHead as MMSegASPPHead
    from mmseg.models.necks import JPU as MMSegJPU

    from densekit.heads import ASPPHead
    from densekit.necks import FPN, JPU

    torch.manual_seed(0)
    div = 8 if quick else 1
    image = 128 if quick else 512
    batch = 2
    cases = []

    fpn_in = [256 // div, 512 // div, 1024 // div, 2048 // div]
    cfg = dict(in_channels=fpn_in, out_channels=256 // div, num_outs=5)
    cases.append(_Case(f'FPN r50 {image}px (mmdet)', *_pair(FPN(**cfg), MMDetFPN(**cfg)),
                       _pyramid(batch, fpn_in, image, (4, 8, 16, 32))))

    jpu_in = (512 // div, 1024 // div, 2048 // div)
    cfg = dict(in_channels=jpu_in, mid_channels=512 // div)
    cases.append(_Case(f'JPU {image}px (mmseg)', *_pair(JPU(**cfg), MMSegJPU(**cfg)),
                       _pyramid(batch, jpu_in, image, (8, 16, 32))))

    cfg = dict(in_channels=2048 // div, channels=512 // div, dilations=(1, 12, 24, 36),
               num_classes=19, norm_cfg=dict(type='BN'), dropout_ratio=0.1)
    side = 64 // (2 if quick else 1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 2048 // div, side, side, generator=gen)
    cases.append(_Case(f'ASPPHead {side}x{side} (mmseg)',
                       *_pair(ASPPHead(**cfg), MMSegASPPHead(**cfg)), [x]))
    return cases + _conv_cases(quick)


def _head_cases(quick: bool) -> List[_Case]:
    """Lite R-ASPP against densekit's ASPPHead (the "peer" here) on the same features: the
    half-width dilated ResNet-18 of the CPU configs (channels 32-64-128-256, strides 4-8-8-8)
    at 512px, batch 2, ASPP rates 1-12-24-36 (mmseg's output-stride-8 DeepLabV3)."""
    from densekit.heads import ASPPHead, LRASPPHead

    div = 4 if quick else 1
    image = 128 if quick else 512
    common = dict(channels=64 // div, num_classes=7, norm_cfg=dict(type='BN'),
                  dropout_ratio=0.1, align_corners=False)
    channels = [32 // div, 64 // div, 128 // div, 256 // div]
    torch.manual_seed(0)
    ours = randomize_norms_(LRASPPHead(in_channels=(channels[0], channels[1], channels[3]),
                                       in_index=(0, 1, 3), branch_channels=(16 // div, 32 // div),
                                       pool_kernel=None, **common))
    peer = randomize_norms_(ASPPHead(in_channels=channels[3], in_index=3,
                                     dilations=(1, 12, 24, 36), **common))
    return [_Case(f'LRASPPHead vs ASPPHead r18-half-d8 {image}px (densekit)', ours, peer,
                  _pyramid(2, channels, image, (4, 8, 8, 8)))]


def _as_list(out: object) -> List[Tensor]:
    return [out] if isinstance(out, Tensor) else list(out)


def _inference(model: nn.Module, inputs: List[Tensor]) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            return model(inputs)
    return run


def _train_step(model: nn.Module, inputs: List[Tensor]) -> Callable[[], object]:
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    params = [p for p in model.parameters() if p.requires_grad]

    def run() -> object:
        loss = sum(out.sum() for out in _as_list(model(leaves)))
        loss.backward()
        for t in params + leaves:
            t.grad = None
        return loss
    return run


@suite('necks')
def necks_suite(repeats: int = 5, quick: bool = False, only: Optional[str] = None) -> List[Row]:
    """FPN, JPU and ASPPHead vs their peers: inference and training step, time / memory /
    GFLOP/s (``only``: just the necks whose case name contains it, plus the matmul ceiling)."""
    _, ceiling = matmul_gflops(2048, repeats)
    rows = [Row('fp32 matmul 2048x2048 (ceiling)', 2 * 2048 ** 3 / ceiling / 1e9, device='cpu',
                extra={'GFLOP': f'{2 * 2048 ** 3 / 1e9:.1f}',
                       'GFLOP/s dk/peer': f'{ceiling:.0f}', '% of matmul dk/peer': '100'})]
    for case in _cases(quick) + _head_cases(quick):
        modes = [mode for mode in ('inference', 'train fwd+bwd')
                 if only is None or only.lower() in f'{case.name} {mode}'.lower()]
        if not modes:
            continue
        case.peer.eval()
        # the peer's forward work, counted once; a training step is ~3x (forward, grad of the
        # input, grad of the weights)
        forward_flops = float(call_flops(_inference(case.peer, case.inputs)))
        for mode in modes:
            train = mode != 'inference'
            case.ours.train(train)
            case.peer.train(train)
            make = _train_step if train else _inference
            ours, peer = make(case.ours, case.inputs), make(case.peer, case.inputs)
            result = measure_pair(ours, peer, device=resolve_device(case.ours, case.inputs),
                                  repeats=repeats, warmup=1)
            t_ours, t_peer = result.seconds
            flops = forward_flops * (3 if train else 1)
            rate_ours, rate_peer = flops / t_ours / 1e9, flops / t_peer / 1e9
            rows.append(result.row(
                f'{case.name} {mode}',
                extra={'GFLOP': f'{flops / 1e9:.1f}',
                       'GFLOP/s dk/peer': f'{rate_ours:.0f}/{rate_peer:.0f}',
                       '% of matmul dk/peer': f'{100 * rate_ours / ceiling:.0f}/'
                                              f'{100 * rate_peer / ceiling:.0f}'}))
    return rows
