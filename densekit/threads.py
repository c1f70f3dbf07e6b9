"""CPU thread settings: how many cores are idle, and a block that runs with a given thread count.

On a machine shared with other jobs, OpenMP threads that wait for each other make small
convolutions many times slower than one thread, so CPU training, demos and benchmarks run on the
cores that are idle right now. :func:`idle_cpu_threads` measures them from ``/proc/stat`` (the
share of CPU time spent idle over a short interval), not from the load average, which lags by a
minute and counts processes that sleep on I/O.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator, Optional, Tuple

import torch

from densekit.errors import positive_int

__all__ = ['idle_cpu_threads', 'torch_threads', 'idle_threads', 'cpu_times']

_PROC_STAT = '/proc/stat'


def cpu_times(path: str = _PROC_STAT) -> Optional[Tuple[int, int]]:
    """``(idle, total)`` CPU time in clock ticks, summed over all cores, from the ``cpu`` line
    of ``path``; ``None`` when it cannot be read (not Linux, no ``/proc``)."""
    try:
        with open(path, encoding='ascii') as handle:
            first = handle.readline().split()
    except OSError:
        return None
    if len(first) < 5 or first[0] != 'cpu':
        return None
    try:
        ticks = [int(v) for v in first[1:]]
    except ValueError:
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already
    # counted in user / nice, so only the first eight fields make up the total
    ticks = ticks[:8]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return idle, sum(ticks)


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def idle_cpu_threads(interval: float = 0.2, path: str = _PROC_STAT) -> int:
    """The number of cores idle now: ``round(idle share * cpu_count)`` over ``interval`` seconds.

    Sampled from ``path`` (``/proc/stat``) twice, ``interval`` apart; at least 1 and at most the
    cores this process may run on. Falls back to ``os.cpu_count()`` (capped the same way) when
    the file cannot be read or no time passed between the samples.
    """
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not \
            0 < interval <= 10:
        raise ValueError(f'interval must be a number of seconds in (0, 10], got {interval!r}')
    usable = _usable_cores()
    cores = os.cpu_count() or usable
    first = cpu_times(path)
    if first is None:
        return min(cores, usable)
    time.sleep(interval)
    second = cpu_times(path)
    if second is None or second[1] <= first[1]:
        return min(cores, usable)
    idle_share = (second[0] - first[0]) / (second[1] - first[1])
    return max(1, min(usable, int(idle_share * cores + 0.5)))


@contextlib.contextmanager
def torch_threads(count: Optional[int]) -> Iterator[int]:
    """Run the block with ``count`` intra-op threads (``torch.set_num_threads``), restoring the
    previous setting after, also on an exception. ``None`` leaves the setting as it is.

    Yields the thread count in effect inside the block.

    Example:
        >>> with torch_threads(1) as n:
        ...     n == torch.get_num_threads() == 1
        True
    """
    if count is not None:
        positive_int(count, 'count')
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def idle_threads(interval: float = 0.2) -> contextlib.AbstractContextManager:
    """:func:`torch_threads` with :func:`idle_cpu_threads` on a CPU-only machine; where CUDA is
    available the thread count is left as it is (the GPU does the work)."""
    return torch_threads(None if torch.cuda.is_available() else idle_cpu_threads(interval))
