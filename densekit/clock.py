"""A training clock that every rank reads alike: rank 0's elapsed time, broadcast.

Time budgets (``densekit.TimeBudgetHook``) and time-based schedules (``densekit.TimeCosineLRHook``)
must make the same decision on every rank of a distributed run. Each rank's own clock does not:
ranks start at different moments (one builds its data loader or model more slowly), so their
elapsed times differ for the whole run. A rank that stops while the others go on deadlocks the
next collective, and learning rates computed from different clocks make the replicas drift apart.

:class:`Rank0Clock` reads ``time.perf_counter`` on rank 0 only and broadcasts it, so every rank
gets the same number. The broadcast is one float64 scalar (``mmengine.dist.broadcast``, which
puts it on the communication device: the CPU for gloo, the GPU for nccl). ``sync_every`` > 1
broadcasts only on every N-th reading and returns the last broadcast value in between: every
rank reads on the same iterations, so they still agree, at a resolution of N iterations.
Outside a distributed run the clock is the local one and nothing is communicated.
"""
from __future__ import annotations

import time
from typing import Optional

import torch
from mmengine import dist

from densekit.errors import positive_int

__all__ = ['Rank0Clock']


class Rank0Clock:
    """Seconds since :meth:`start` on rank 0, the same on every rank.

    Args:
        sync_every: Broadcast on every ``sync_every``-th call of :meth:`elapsed` (and return
            the last broadcast value on the others). All ranks must call :meth:`elapsed` the
            same number of times, as hooks called once per iteration do.

    Example:
        >>> clock = Rank0Clock()
        >>> clock.start()
        >>> clock.elapsed() >= 0.0
        True
    """

    def __init__(self, sync_every: int = 1) -> None:
        self.sync_every = positive_int(sync_every, 'sync_every')
        self._start: Optional[float] = None
        self._calls = 0
        self._last = 0.0

    @property
    def started(self) -> bool:
        """Whether :meth:`start` has been called."""
        return self._start is not None

    def start(self) -> None:
        """Start (or restart) the clock on this rank; rank 0's start is the one that counts."""
        self._start = time.perf_counter()
        self._calls = 0
        self._last = 0.0

    def local_elapsed(self) -> float:
        """This rank's own seconds since :meth:`start` (not synchronised)."""
        if self._start is None:
            raise RuntimeError('Rank0Clock.elapsed() called before start()')
        return time.perf_counter() - self._start

    def elapsed(self) -> float:
        """Rank 0's seconds since its :meth:`start`; a collective call in distributed runs."""
        local = self.local_elapsed()
        calls, self._calls = self._calls, self._calls + 1
        if dist.get_world_size() == 1:
            self._last = local
        elif calls % self.sync_every == 0:
            value = torch.tensor([local], dtype=torch.float64)
            dist.broadcast(value, src=0)
            self._last = float(value.item())
        return self._last
