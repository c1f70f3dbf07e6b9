"""How many windows of a window batch go into one network call (``micro_batch='auto'``).

On a CPU, whether a batch of large 3D windows runs faster per window than the same windows one
by one depends on the machine and its load: on an idle machine single 64^3 windows were ~1.3x
faster per window, on a machine whose cores are shared with other jobs the batched call won
(fewer thread synchronisations). For a network that treats samples independently (an
``nn.Module`` in eval mode) both give the same result, so densekit measures instead of guessing:
after one warm-up of each, it alternates full and split window batches twice, and keeps the
faster per window for the rest of the run.
"""
from __future__ import annotations

import statistics
from typing import Dict, List, Optional

__all__ = ['CallPlanner']

# batch index -> True (split into single windows) / False (one call), then decide
_PROBES = (False, True, False, True, False, True)
_WARMUP = 2


class CallPlanner:
    """Windows per predictor call, for each window batch of a run.

    Args:
        sw_batch_size: Windows per window batch.
        micro_batch: Fixed windows per call, or None.
        adaptive: Measure full vs single-window calls (only meaningful when the predictor
            treats samples independently).

    Example:
        >>> planner = CallPlanner(4, None, adaptive=False)
        >>> planner.step(0)
        4
    """

    def __init__(self, sw_batch_size: int, micro_batch: Optional[int], adaptive: bool) -> None:
        if micro_batch is not None and (not isinstance(micro_batch, int) or
                                        isinstance(micro_batch, bool) or micro_batch < 1):
            raise ValueError(f"micro_batch must be a positive int, None or 'auto', got "
                             f'{micro_batch!r}')
        self.full = sw_batch_size
        self.fixed = micro_batch
        self.adaptive = adaptive and micro_batch is None and sw_batch_size > 1
        self.times: Dict[bool, List[float]] = {False: [], True: []}
        self.choice: Optional[bool] = None

    def step(self, index: int) -> int:
        """Windows per call for window batch ``index``."""
        if self.fixed is not None:
            return self.fixed
        if not self.adaptive:
            return self.full
        split = _PROBES[index] if index < len(_PROBES) else bool(self.choice)
        return 1 if split else self.full

    def record(self, index: int, seconds: float, windows: int) -> None:
        """Report the wall time of window batch ``index`` (``windows`` windows)."""
        if not self.adaptive or index >= len(_PROBES) or windows != self.full:
            return
        if index >= _WARMUP:
            self.times[_PROBES[index]].append(seconds / windows)
        if index == len(_PROBES) - 1 and self.times[True] and self.times[False]:
            self.choice = statistics.median(self.times[True]) < \
                statistics.median(self.times[False])
