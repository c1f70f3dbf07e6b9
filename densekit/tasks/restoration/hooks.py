"""Hooks for time-budgeted CPU training.

* ``TimeCosineLRHook``: warm-up and cosine learning-rate decay over a wall-clock budget. The CPU
  configs train for a fixed time (``densekit.TimeBudgetHook`` stops them), not a fixed number of
  iterations: how many iterations fit depends on the machine and its load. Scheduling the
  learning rate by elapsed time makes every run end annealed, however many iterations it did.
* ``CpuThreadsHook``: picks the number of PyTorch CPU threads for training. On a machine
  whose cores are already busy, OpenMP threads that wait for each other make small convolutions
  many times slower than one thread does; ``'auto'`` uses only the idle cores.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, List, Optional, Union

from mmengine.hooks import Hook

from densekit.clock import Rank0Clock
from densekit.registry import HOOKS
from densekit.threads import idle_cpu_threads, torch_threads

__all__ = ['TimeCosineLRHook', 'CpuThreadsHook', 'idle_cpu_threads']


@HOOKS.register_module()
class TimeCosineLRHook(Hook):
    """Set ``lr = base * factor(t)`` before each iteration, ``t`` = elapsed / ``budget_s``.

    ``factor`` rises linearly from ``warmup_ratio`` to 1 over ``warmup_iters`` iterations, then
    follows a cosine from 1 to ``min_ratio`` over the time budget (and stays there).

    Args:
        budget_s: Training time budget in seconds (use the ``TimeBudgetHook``'s).
        warmup_iters: Linear warm-up iterations.
        warmup_ratio: Starting factor of the warm-up.
        min_ratio: Final factor.
        validate_at_end: Run the validation loop when training stops early (a time budget
            stops the loop before ``max_iters``, where mmengine would have validated).
        sync_every: Read rank 0's clock (one broadcast) every this many iterations and keep
            the rate in between; 1 follows the clock every iteration. Single-process runs never
            communicate.
    """

    priority = 'HIGH'

    def __init__(self, budget_s: float, warmup_iters: int = 20, warmup_ratio: float = 0.1,
                 min_ratio: float = 0.01, validate_at_end: bool = True,
                 sync_every: int = 1) -> None:
        if not budget_s > 0:
            raise ValueError(f'budget_s must be > 0 seconds, got {budget_s!r}')
        if not isinstance(warmup_iters, int) or warmup_iters < 0:
            raise ValueError(f'warmup_iters must be an int >= 0, got {warmup_iters!r}')
        for name, value in (('warmup_ratio', warmup_ratio), ('min_ratio', min_ratio)):
            if not 0 <= value <= 1:
                raise ValueError(f'{name} must be in [0, 1], got {value!r}')
        self.budget_s, self.warmup_iters = float(budget_s), warmup_iters
        self.warmup_ratio, self.min_ratio = warmup_ratio, min_ratio
        self.validate_at_end = validate_at_end
        self._clock = Rank0Clock(sync_every=sync_every)
        self._base: List[float] = []

    def factor(self, iteration: int, elapsed_s: float) -> float:
        """The learning-rate factor at ``iteration`` after ``elapsed_s`` seconds."""
        progress = min(max(elapsed_s / self.budget_s, 0.0), 1.0)
        cosine = self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        if iteration < self.warmup_iters:
            ramp = self.warmup_ratio + (1 - self.warmup_ratio) * iteration / self.warmup_iters
            return min(ramp, cosine)
        return cosine

    def _groups(self, runner: Any) -> list:
        wrapper = runner.optim_wrapper
        return list(wrapper.optimizer.param_groups)

    def before_train(self, runner: Any) -> None:  # noqa: D102
        self._clock.start()
        self._base = [group['lr'] for group in self._groups(runner)]

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:  # noqa: D102
        if not self._clock.started:
            return
        factor = self.factor(runner.iter, self._clock.elapsed())
        for group, base in zip(self._groups(runner), self._base):
            group['lr'] = base * factor

    def after_train(self, runner: Any) -> None:  # noqa: D102
        loop = runner.train_loop
        stopped_early = getattr(loop, 'stop_training', False) and runner.iter < loop.max_iters
        if self.validate_at_end and stopped_early and runner.val_loop is not None:
            runner.val_loop.run()


@HOOKS.register_module()
class CpuThreadsHook(Hook):
    """Set ``torch.set_num_threads`` for training on the CPU; restore it when the run ends.

    Args:
        threads: A thread count, or ``'auto'`` for :func:`idle_cpu_threads`. Ignored on GPU.
    """

    priority = 'VERY_HIGH'

    def __init__(self, threads: Union[int, str] = 'auto') -> None:
        if threads != 'auto' and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive int or 'auto', got {threads!r}")
        self.threads = threads
        self._threads: Optional[contextlib.ExitStack] = None

    def before_train(self, runner: Any) -> None:  # noqa: D102
        import torch
        from mmengine.logging import print_log

        if torch.cuda.is_available():
            return
        count = idle_cpu_threads() if self.threads == 'auto' else int(self.threads)
        self._threads = contextlib.ExitStack()
        self._threads.enter_context(torch_threads(count))
        print_log(f'training on {count} CPU thread(s)', logger='current')

    def after_run(self, runner: Any) -> None:  # noqa: D102 (after the final validation too)
        if self._threads is not None:
            self._threads.close()
            self._threads = None
