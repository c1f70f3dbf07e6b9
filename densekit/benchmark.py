"""Side-by-side benchmarks of densekit against its peers (``densekit bench`` / tools/benchmark.py).

Every case runs densekit and the peer in one process, alternating, after warm-up, and reports
the median of ``repeats`` runs, the time ratio (densekit / peer) and peak memory. Suites
register themselves in :data:`SUITES` with :func:`suite`.
"""
from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch

SUITES: Dict[str, Callable[..., List[Row]]] = {}
# Modules that define suites with @suite(...); imported on first use of the CLI.
SUITE_MODULES: List[str] = [
    'densekit.necks.bench',
    'densekit.backbones.piip_bench',
    'densekit.backbones.bench',
    'densekit.augment_bench',
    'densekit.tasks.medical3d.bench',
    'densekit.tasks.medical3d.rev_bench',
    'densekit.tasks.restoration.bench',
]


def load_suites() -> Dict[str, Callable[..., List[Row]]]:
    """Import every module in :data:`SUITE_MODULES` and return :data:`SUITES`."""
    import importlib

    for module in SUITE_MODULES:
        importlib.import_module(module)
    return SUITES


def suite(name: str) -> Callable:
    """Register a benchmark suite function ``fn(repeats: int, quick: bool) -> list[Row]``."""
    def wrap(fn: Callable) -> Callable:
        SUITES[name] = fn
        return fn
    return wrap


@dataclass
class Row:
    """One benchmark line: a case measured for densekit and (optionally) its peer."""

    case: str
    densekit_s: float
    peer_s: Optional[float] = None
    densekit_mem_mb: Optional[float] = None
    peer_mem_mb: Optional[float] = None
    extra: Dict[str, str] = field(default_factory=dict)

    @property
    def ratio(self) -> Optional[float]:
        """densekit time / peer time (< 1 means densekit is faster)."""
        return None if not self.peer_s else self.densekit_s / self.peer_s


def peak_memory_mb(fn: Callable[[], object]) -> float:
    """Peak tensor memory (MiB) allocated while ``fn`` runs.

    On CUDA this is the allocator's peak; on CPU it replays the profiler's allocation events in
    time order and takes the maximum of the running total.
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage),
                    key=lambda e: e.time_range.start)
    running = peak = 0
    for event in events:
        running += event.self_cpu_memory_usage
        peak = max(peak, running)
    return peak / 2**20


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_pair(fn_a: Callable[[], object], fn_b: Optional[Callable[[], object]],
              repeats: int = 5, warmup: int = 1) -> tuple[float, Optional[float]]:
    """Median wall time of ``fn_a`` and ``fn_b``, run alternately ``repeats`` times each."""
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    for _ in range(warmup):
        fn_a()
        if fn_b is not None:
            fn_b()
    times_a: List[float] = []
    times_b: List[float] = []
    for _ in range(repeats):
        for fn, out in ((fn_a, times_a), (fn_b, times_b)):
            if fn is None:
                continue
            _sync()
            start = time.perf_counter()
            fn()
            _sync()
            out.append(time.perf_counter() - start)
    return statistics.median(times_a), (statistics.median(times_b) if times_b else None)


def format_table(rows: List[Row]) -> str:
    """Render rows as a Markdown table."""
    extra_keys: List[str] = []
    for row in rows:
        extra_keys += [k for k in row.extra if k not in extra_keys]
    head = ['case', 'densekit s', 'peer s', 'ratio', 'densekit MiB', 'peer MiB', *extra_keys]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]

    def fmt(value: Optional[float], digits: int = 3) -> str:
        return '-' if value is None else f'{value:.{digits}f}'

    for r in rows:
        cells = [r.case, fmt(r.densekit_s), fmt(r.peer_s), fmt(r.ratio, 2),
                 fmt(r.densekit_mem_mb, 1), fmt(r.peer_mem_mb, 1),
                 *[r.extra.get(k, '') for k in extra_keys]]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def run_suites(name: str, repeats: int = 5, quick: bool = False,
               only: Optional[str] = None) -> Dict[str, List[Row]]:
    """Run one suite (or ``'all'``), print each table and return the rows.

    ``only`` keeps the cases whose name contains it (case-insensitive): a suite that takes an
    ``only`` argument skips the other cases itself (and may keep reference rows such as a
    ceiling); for the others the rows are filtered after the run.
    """
    import inspect

    load_suites()
    if name != 'all' and name not in SUITES:
        raise ValueError(f'unknown benchmark suite {name!r}; choose from {sorted(SUITES)} or all')
    names = list(SUITES) if name == 'all' else [name]
    torch.set_num_threads(torch.get_num_threads())
    results = {}
    for key in names:
        print(f'## {key} (median of {repeats}, {torch.get_num_threads()} threads, '
              f'{"cuda" if torch.cuda.is_available() else "cpu"})', flush=True)
        fn = SUITES[key]
        if only is not None and 'only' in inspect.signature(fn).parameters:
            rows = fn(repeats=repeats, quick=quick, only=only)
        else:
            rows = fn(repeats=repeats, quick=quick)
            if only is not None:
                rows = [row for row in rows if only.lower() in row.case.lower()]
        print(format_table(rows), flush=True)
        results[key] = rows
    return results
