"""``densekit bench necks-bf16``: the ``necks`` cases under ``torch.autocast('cpu', bfloat16)``.

densekit FPN / JPU / ASPPHead against mmdet FPN / mmseg JPU / mmseg ASPPHead with identical
weights and inputs, both run under the same CPU bfloat16 autocast (weights stay float32, as in
mixed-precision training), alternating in one process. Rows: inference and a training step
(forward + backward of the summed outputs). Each inference row also gives how far the bf16
output is from the same model's float32 output (max abs difference / max abs value), for
densekit and the peer. A case that raises under autocast is reported as a failed row with the
error, and the suite goes on.
"""
from __future__ import annotations

from typing import Callable, List, Optional

import torch
from torch import Tensor, nn

from benchmarks.harness import Row, measure_pair, resolve_device, suite
from benchmarks.necks import _as_list, _cases, _inference, _train_step

__all__ = ['necks_bf16_suite', 'autocast_bf16']


def autocast_bf16(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` run under ``torch.autocast('cpu', dtype=torch.bfloat16)``."""
    def run() -> object:
        with torch.autocast('cpu', dtype=torch.bfloat16):
            return fn()
    return run


def _relative_error(model: nn.Module, inputs: List[Tensor]) -> float:
    """max |bf16 - fp32| / max |fp32| over the model's outputs (eval, no grad)."""
    with torch.inference_mode():
        ref = _as_list(model(inputs))
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = _as_list(model(inputs))
    err = max(float((a.float() - b.float()).abs().max()) for a, b in zip(low, ref))
    scale = max(float(b.abs().max()) for b in ref)
    return err / max(scale, 1e-30)


def _failed_row(name: str, who: str, err: BaseException) -> Row:
    message = ' '.join(str(err).split())[:120]
    return Row(name, float('nan'), device='cpu',
               extra={'status': f'FAILED ({who}): {type(err).__name__}: {message}'})


@suite('necks-bf16')
def necks_bf16_suite(repeats: int = 5, quick: bool = False,
                     only: Optional[str] = None) -> List[Row]:
    """The ``necks`` cases under CPU bf16 autocast, densekit vs peer (``only``: case filter)."""
    rows: List[Row] = []
    for case in _cases(quick):
        modes = [mode for mode in ('inference', 'train fwd+bwd')
                 if only is None or only.lower() in f'{case.name} bf16 {mode}'.lower()]
        if not modes:
            continue
        for mode in modes:
            name = f'{case.name} bf16 {mode}'
            train = mode != 'inference'
            case.ours.train(train)
            case.peer.train(train)
            make = _train_step if train else _inference
            ours = autocast_bf16(make(case.ours, case.inputs))
            peer = autocast_bf16(make(case.peer, case.inputs))
            failed = None
            for who, fn in (('densekit', ours), ('peer', peer)):
                try:
                    fn()
                except Exception as err:  # noqa: BLE001 (reported as the row's result)
                    failed = _failed_row(name, who, err)
                    break
            if failed is not None:
                rows.append(failed)
                print(f'{name}: {failed.extra["status"]}', flush=True)
                continue
            extra = {'status': 'ok'}
            if not train:
                extra['bf16 vs fp32 rel err dk/peer'] = (
                    f'{_relative_error(case.ours, case.inputs):.1e}/'
                    f'{_relative_error(case.peer, case.inputs):.1e}')
            result = measure_pair(ours, peer, device=resolve_device(case.ours, case.inputs),
                                  repeats=repeats, warmup=0)
            rows.append(result.row(name, extra=extra))
            print(f'{name}: ratio {rows[-1].ratio:.2f}', flush=True)
    return rows
