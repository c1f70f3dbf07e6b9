"""A test-only hook for the 2-process time-budget test (imported by its config via custom_imports).

``ClockSkewProbeHook`` makes the ranks' clocks disagree on purpose: on ``skew_rank`` it sleeps
``skew_s`` seconds in ``before_train``, before the time-budget hooks start their clocks (it runs
at a higher priority), so that rank's clock lags rank 0's by ``skew_s`` for the whole run. It
records the learning rate each iteration trains with, and at the end writes the rank's final
iteration, learning rates and parameters to ``work_dir/probe_rank{R}.pth``.
"""
from __future__ import annotations

import os.path as osp
import time
from typing import Any, List

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from densekit.registry import HOOKS


@HOOKS.register_module()
class ClockSkewProbeHook(Hook):
    """Delay one rank's start by ``skew_s`` seconds; record each rank's LRs and final weights."""

    priority = 'VERY_HIGH'

    def __init__(self, skew_s: float, skew_rank: int = 1) -> None:
        self.skew_s, self.skew_rank = float(skew_s), int(skew_rank)
        self.lrs: List[float] = []

    def before_train(self, runner: Any) -> None:  # noqa: D102
        if get_rank() == self.skew_rank:
            time.sleep(self.skew_s)

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:  # noqa: D102
        # the LR hook sets the rate in before_train_iter; read what this iteration used
        self.lrs.append(float(runner.optim_wrapper.optimizer.param_groups[0]['lr']))

    def after_train(self, runner: Any) -> None:  # noqa: D102
        model = getattr(runner.model, 'module', runner.model)
        params = {k: v.detach().clone() for k, v in model.named_parameters()}
        torch.save(dict(iter=runner.iter, lrs=self.lrs, params=params),
                   osp.join(runner.work_dir, f'probe_rank{get_rank()}.pth'))
