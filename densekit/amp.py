"""Mixed-precision training on the CPU, and the optim-wrapper choice behind ``--amp``.

mmengine's ``AmpOptimWrapper`` refuses to build on a CPU-only machine ("only available training
on gpu"), so ``densekit train --amp`` used to stop there. :class:`CPUAmpOptimWrapper` is the CPU
counterpart: ``train_step`` runs the forward and the loss under
``torch.autocast('cpu', dtype=torch.bfloat16)``; backward and the optimizer step stay as in
``OptimWrapper``. There is no loss scaler: bfloat16 has float32's exponent range, so gradients do
not underflow the way float16's do (which is why float16 is refused here). Parameters, gradients
and optimizer state stay float32.

:func:`amp_optim_wrapper_type` says which wrapper ``--amp`` uses on a device: mmengine's
``AmpOptimWrapper`` (float16 with dynamic loss scaling) on GPUs, this one on the CPU.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from densekit.registry import OPTIM_WRAPPERS

__all__ = ['CPUAmpOptimWrapper', 'amp_optim_wrapper_type']

_DTYPES = {'bfloat16': torch.bfloat16, 'bf16': torch.bfloat16}


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward and loss run under CPU bfloat16 autocast.

    Args:
        optimizer: The optimizer (built by mmengine from ``optim_wrapper.optimizer``).
        accumulative_counts: Gradient accumulation steps, as in ``OptimWrapper``.
        clip_grad: Gradient clipping config, as in ``OptimWrapper``.
        dtype: The autocast dtype: ``'bfloat16'`` (the only one that trains safely without a
            loss scaler).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, accumulative_counts: int = 1,
                 clip_grad: Optional[dict] = None, *, dtype: str = 'bfloat16') -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'bfloat16' for CPU mixed precision (float16 needs "
                             f'a loss scaler; use AmpOptimWrapper on a GPU), got {dtype!r}')
        super().__init__(optimizer, accumulative_counts=accumulative_counts,
                         clip_grad=clip_grad)
        self.cast_dtype = _DTYPES[dtype]

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Gradient-accumulation context of ``OptimWrapper`` plus CPU bfloat16 autocast."""
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Load optimizer state; a GPU ``AmpOptimWrapper``'s loss-scaler entry is dropped."""
        state_dict = {k: v for k, v in state_dict.items() if k != 'loss_scaler'}
        super().load_state_dict(state_dict)


def amp_optim_wrapper_type(device: Optional[str] = None) -> str:
    """The optim-wrapper type ``--amp`` trains with on ``device`` (default: mmengine's choice,
    the GPU where one is present).

    Returns:
        ``'AmpOptimWrapper'`` (mmengine, float16 + loss scaling) on CUDA/NPU/MLU/MUSA devices,
        ``'densekit.CPUAmpOptimWrapper'`` (bfloat16 autocast) on the CPU.
    """
    if device is None:
        from mmengine.device import get_device

        device = get_device()
    kind = str(device).split(':')[0]
    return 'densekit.CPUAmpOptimWrapper' if kind == 'cpu' else 'AmpOptimWrapper'
