"""Runner hooks densekit adds: progress bars for evaluation and a wall-clock training budget."""
from __future__ import annotations

from typing import Any, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from densekit.clock import Rank0Clock
from densekit.registry import HOOKS


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """Show a progress bar over validation and test iterations (rank 0 only)."""

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._bar: Optional[ProgressBar] = None

    def _start(self, runner: Any, loader: Any) -> None:
        self._bar = ProgressBar(len(loader)) if is_main_process() else None

    def _step(self) -> None:
        if self._bar is not None:
            self._bar.update()

    def _finish(self) -> None:
        if self._bar is not None:
            self._bar.file.write('\n')
            self._bar = None

    def before_val_epoch(self, runner: Any) -> None:  # noqa: D102
        self._start(runner, runner.val_dataloader)

    def before_test_epoch(self, runner: Any) -> None:  # noqa: D102
        self._start(runner, runner.test_dataloader)

    def after_val_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                       outputs: Any = None) -> None:  # noqa: D102
        self._step()

    def after_test_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                        outputs: Any = None) -> None:  # noqa: D102
        self._step()

    def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:  # noqa: D102
        self._finish()

    def after_test_epoch(self, runner: Any, metrics: Any = None) -> None:  # noqa: D102
        self._finish()


@HOOKS.register_module()
class TimeBudgetHook(Hook):
    """Stop training cleanly once ``budget_s`` seconds of training have passed.

    The loop finishes the current iteration and stops; the hook then saves a checkpoint of
    that iteration (and points ``last_checkpoint`` at it) unless one exists already, so a
    budget-limited run always leaves its final weights. Used by the demo to keep each stage in
    its budget.

    In a distributed run the time is rank 0's (:class:`densekit.clock.Rank0Clock`, one scalar
    broadcast per check): rank 0's clock decides and every rank stops after the same
    iteration. With each rank's own clock a rank that started later would train on alone and
    wait forever in the next all-reduce.

    Args:
        budget_s: Seconds of training (from ``before_train``).
        check_every: Check the clock (a collective in distributed runs) every this many
            iterations; the run may overshoot the budget by up to that many iterations.
    """

    priority = 'LOW'

    def __init__(self, budget_s: float, check_every: int = 1) -> None:
        if not budget_s > 0:
            raise ValueError(f'budget_s must be > 0 seconds, got {budget_s!r}')
        if not isinstance(check_every, int) or isinstance(check_every, bool) or check_every < 1:
            raise ValueError(f'check_every must be an int >= 1, got {check_every!r}')
        self.budget_s = float(budget_s)
        self.check_every = check_every
        self._clock = Rank0Clock(sync_every=1)
        self._checks = 0

    def before_train(self, runner: Any) -> None:  # noqa: D102
        self._clock.start()
        self._checks = 0
        print_log(f'training time budget: {self.budget_s:.0f} s', logger='current')

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:  # noqa: D102
        if not self._clock.started:
            return
        self._checks += 1
        if self._checks % self.check_every:
            return
        # every rank reads rank 0's elapsed time, so every rank takes rank 0's decision
        if self._clock.elapsed() < self.budget_s:
            return
        loop = runner.train_loop
        if not getattr(loop, 'stop_training', False):
            print_log(f'time budget of {self.budget_s:.0f} s reached at iter {runner.iter + 1}; '
                      'stopping training', logger='current')
            loop.stop_training = True

    def after_train(self, runner: Any) -> None:  # noqa: D102
        if not getattr(runner.train_loop, 'stop_training', False):
            return
        import os.path as osp

        from densekit.fileio import atomic_write_text

        name = f'iter_{runner.iter}.pth'
        if not osp.isfile(osp.join(runner.work_dir, name)):
            runner.save_checkpoint(runner.work_dir, name)
            if is_main_process():
                atomic_write_text(osp.join(runner.work_dir, name),
                                  osp.join(runner.work_dir, 'last_checkpoint'))
