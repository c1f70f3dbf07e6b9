"""Side-by-side benchmarks of densekit against its peers (``densekit bench`` / tools/benchmark.py).

Every case runs densekit and the peer in one process, alternating, after warm-up, and reports
the median of ``repeats`` runs, the time ratio (densekit / peer) and peak memory. Suites
register themselves in :data:`SUITES` with :func:`suite`.

The benchmarks live in this ``benchmarks/`` folder of a source checkout, not in the installed
package; the memory measurements they share with the library come from
:mod:`densekit.analysis.memory`.
"""
from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from densekit.analysis.memory import (  # noqa: F401  (re-exported for the suites)
    DeviceLike,
    cpu_tensor_peak_mb,
    peak_memory_mb,
    peak_rss_mb,
    resolve_device,
    synchronize,
)

SUITES: Dict[str, Callable[..., List[Row]]] = {}
# Modules that define suites with @suite(...); imported on first use of the CLI.
SUITE_MODULES: List[str] = [
    'benchmarks.necks',
    'benchmarks.necks_bf16',
    'benchmarks.models',
    'benchmarks.piip',
    'benchmarks.backbones',
    'benchmarks.augment',
    'benchmarks.medical3d',
    'benchmarks.medical3d_reversible',
    'benchmarks.restoration',
    'benchmarks.deploy',
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
    device: str = ''
    """Where the case ran ('cpu', 'cuda:0'); '' for suites that do not say."""

    @property
    def ratio(self) -> Optional[float]:
        """densekit time / peer time (< 1 means densekit is faster)."""
        return None if not self.peer_s else self.densekit_s / self.peer_s


def time_pair(fn_a: Callable[[], object], fn_b: Optional[Callable[[], object]],
              repeats: int = 5, warmup: int = 1,
              device: DeviceLike = None,
              cpu_out: Optional[Tuple[List[float], List[float]]] = None
              ) -> tuple[float, Optional[float]]:
    """Median wall time of ``fn_a`` and ``fn_b``, run alternately ``repeats`` times each.

    Each run is bracketed by :func:`synchronize` on ``device`` (CUDA work is timed to its
    end; ``None``: synchronise CUDA where it is initialised). ``cpu_out``: two lists that
    receive each timed run's process CPU time (all threads) for ``fn_a`` and ``fn_b``.
    """
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    if device is not None:
        device = torch.device(device)
    for _ in range(warmup):
        fn_a()
        if fn_b is not None:
            fn_b()
    times_a: List[float] = []
    times_b: List[float] = []
    for _ in range(repeats):
        for fn, out, cpu in ((fn_a, times_a, 0), (fn_b, times_b, 1)):
            if fn is None:
                continue
            synchronize(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            fn()
            synchronize(device)
            out.append(time.perf_counter() - start)
            if cpu_out is not None:
                cpu_out[cpu].append(time.process_time() - cpu_start)
    return statistics.median(times_a), (statistics.median(times_b) if times_b else None)


@dataclass
class PairMeasurement:
    """What :func:`measure_pair` measured for ``a`` (densekit) and ``b`` (the peer)."""

    device: torch.device
    seconds: Tuple[float, Optional[float]]
    memory_mb: Tuple[float, Optional[float]]
    rss_mb: Tuple[Optional[float], Optional[float]] = (None, None)
    cpu_seconds: Tuple[Optional[float], Optional[float]] = (None, None)
    """Median process CPU time (all threads) of the timed runs: on a machine shared with other
    jobs it grows less than the wall time does, so its ratio is a second opinion."""

    @property
    def memory_kind(self) -> str:
        """How the memory was measured, for the table."""
        return 'cuda max_memory_allocated' if self.device.type == 'cuda' else 'cpu tensor peak'

    def row(self, case: str, extra: Optional[Dict[str, str]] = None) -> Row:
        """A table row of this measurement (RSS, where measured, as an extra column)."""
        extra = dict(extra or {})
        if self.cpu_seconds[0] is not None and self.device.type == 'cpu':
            a, b = self.cpu_seconds
            extra['CPU s dk/peer'] = f'{a:.3f}/{b:.3f}' if b else f'{a:.3f}'
            extra['CPU ratio'] = f'{a / b:.2f}' if b else '-'
        if self.rss_mb[0] is not None:
            extra['peak RSS MiB dk/peer'] = '/'.join(
                '-' if v is None else f'{v:.0f}' for v in self.rss_mb)
        return Row(case, self.seconds[0], self.seconds[1], self.memory_mb[0], self.memory_mb[1],
                   extra=extra, device=str(self.device))


def _append_tensor_peak(fn: Callable[[], object], out: List[float]) -> None:
    out.append(cpu_tensor_peak_mb(fn))


def measure_pair(fn_a: Callable[[], object], fn_b: Optional[Callable[[], object]], *,
                 device: DeviceLike, repeats: int = 5, warmup: int = 1,
                 rss: bool = True) -> PairMeasurement:
    """Time (alternating, median), peak memory and, on the CPU, peak RSS of two callables.

    Args:
        fn_a: densekit's case.
        fn_b: The peer's case, or None.
        device: Where the work runs (see :func:`resolve_device`): CUDA is timed with
            synchronisation and its memory is the allocator's peak; the CPU is timed by the
            wall clock and its memory is the tensor peak, plus the RSS rise when ``rss``.
        repeats: Timed runs of each (median).
        warmup: Untimed runs of each first.
        rss: Also measure the CPU's peak RSS rise (one more run of each).
    """
    device = resolve_device(device)
    cpu_runs: Tuple[List[float], List[float]] = ([], [])
    t_a, t_b = time_pair(fn_a, fn_b, repeats=repeats, warmup=warmup, device=device,
                         cpu_out=cpu_runs)
    cpu_s = (statistics.median(cpu_runs[0]),
             statistics.median(cpu_runs[1]) if cpu_runs[1] else None)
    mem: List[Optional[float]] = []
    rss_mb: List[Optional[float]] = []
    for fn in (fn_a, fn_b):
        if fn is None:
            mem.append(None)
            rss_mb.append(None)
        elif rss and device.type == 'cpu':
            # one run for both: the RSS high-water mark around the profiled run
            held: List[float] = []
            rss_mb.append(peak_rss_mb(functools.partial(_append_tensor_peak, fn, held)))
            mem.append(held[0] if held else cpu_tensor_peak_mb(fn))
        else:
            mem.append(peak_memory_mb(fn, device))
            rss_mb.append(None)
    return PairMeasurement(device, (t_a, t_b), (mem[0], mem[1]), (rss_mb[0], rss_mb[1]),
                           cpu_s)


MEMORY_LEGEND = {
    'cpu': 'cpu: wall time; MiB = peak of the running total of tensor allocations (profiler); '
           'peak RSS = rise of the process high-water mark',
    'cuda': 'cuda: time synchronised (torch.cuda.synchronize); '
            'MiB = torch.cuda.max_memory_allocated above the start',
}


def format_table(rows: List[Row]) -> str:
    """Render rows as a Markdown table (with a device column and legend where rows say)."""
    extra_keys: List[str] = []
    for row in rows:
        extra_keys += [k for k in row.extra if k not in extra_keys]
    with_device = any(row.device for row in rows)
    head = ['case', *(['device'] if with_device else []), 'densekit s', 'peer s', 'ratio',
            'densekit MiB', 'peer MiB', *extra_keys]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]

    def fmt(value: Optional[float], digits: int = 3) -> str:
        return '-' if value is None else f'{value:.{digits}f}'

    for r in rows:
        cells = [r.case, *([r.device or '-'] if with_device else []), fmt(r.densekit_s),
                 fmt(r.peer_s), fmt(r.ratio, 2), fmt(r.densekit_mem_mb, 1),
                 fmt(r.peer_mem_mb, 1), *[r.extra.get(k, '') for k in extra_keys]]
        lines.append('| ' + ' | '.join(cells) + ' |')
    kinds = sorted({r.device.split(':')[0] for r in rows if r.device})
    lines += [f'({MEMORY_LEGEND[k]})' for k in kinds if k in MEMORY_LEGEND]
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
    results = {}
    for key in names:
        # where each case ran is the table's device column (suites that measure through
        # measure_pair); the header only says what this process could use
        print(f'## {key} (median of {repeats}, {torch.get_num_threads()} CPU threads'
              f'{", CUDA available" if torch.cuda.is_available() else ""})', flush=True)
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


@torch.no_grad()
def randomize_norms_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every norm layer's affine parameters and BatchNorm running statistics with random
    values (mean ~ N(0, 0.5), var ~ U(0.5, 2), weight ~ U(0.5, 1.5), bias ~ N(0, 0.2)), so eval
    outputs exercise the statistics instead of the identity defaults.

    Returns:
        ``model``, for chaining.
    """
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if not isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm)):
            continue
        weight, bias = getattr(module, 'weight', None), getattr(module, 'bias', None)
        if weight is not None:
            weight.copy_(torch.rand(weight.shape, generator=gen) + 0.5)
        if bias is not None:
            bias.copy_(torch.randn(bias.shape, generator=gen) * 0.2)
        if getattr(module, 'running_mean', None) is not None:
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.5)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) * 1.5
                                     + 0.5)
    return model
