"""Findings, the report that holds them, its screen and JSON forms, and parallel file reading.

A :class:`Finding` is one problem: a severity (``error`` fails the check, ``warning`` does not),
a short upper-case code, the file it concerns (relative to the data root where possible) and a
one-line message that says how to fix it. The screen shows exactly the findings the JSON
report holds, one per line, in the same order (:func:`format_finding`).
"""
from __future__ import annotations

import json
import multiprocessing
import os
import os.path as osp
import re
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

from densekit.errors import positive_int
from densekit.fileio import atomic_write_text

__all__ = ['Finding', 'Report', 'SEVERITIES', 'format_finding', 'map_files', 'default_workers',
           'render_table']

SEVERITIES = ('error', 'warning')


@dataclass(frozen=True)
class Finding:
    """One problem in a dataset.

    Attributes:
        severity: ``'error'`` (the check fails) or ``'warning'``.
        code: Upper-case identifier, e.g. ``'LABEL_OUT_OF_RANGE'``.
        file: The file (or folder) concerned, relative to the data root where it lies under it.
        message: What is wrong and how to fix it, on one line.
    """

    severity: str
    code: str
    file: str
    message: str

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f'severity must be one of {SEVERITIES}, got {self.severity!r}')
        if not self.code or not self.code.replace('_', '').isalnum():
            raise ValueError(f'code must be an upper-case word like LABEL_MISSING, '
                             f'got {self.code!r}')
        if '\n' in self.message:
            raise ValueError(f'message must be one line, got {self.message!r}')


def format_finding(finding: Finding) -> str:
    """The screen line of a finding: ``severity CODE file: message``."""
    return f'{finding.severity:<7} {finding.code:<24} {finding.file}: {finding.message}'


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> List[str]:
    """Plain-text table lines with left-aligned columns."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ['  '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return lines


def _natural(text: str) -> tuple:
    """Sort key that orders numbers by value: 'id 2' before 'id 10'."""
    return tuple((0, int(part), '') if part.isdigit() else (1, 0, part)
                 for part in re.split(r'(\d+)', text))


@dataclass
class Report:
    """The outcome of ``densekit check-data``: findings, statistics and tables."""

    config: str
    split: str
    task: str
    dataset: str
    data_root: str
    findings: List[Finding] = field(default_factory=list)
    stats: Dict[str, Any] = field(default_factory=dict)
    tables: Dict[str, dict] = field(default_factory=dict)
    files: int = 0
    seconds: float = 0.0
    workers: int = 1

    def add(self, severity: str, code: str, file: str, message: str) -> None:
        """Record a finding."""
        self.findings.append(Finding(severity, code, file, message))

    def error(self, code: str, file: str, message: str) -> None:
        """Record an error."""
        self.add('error', code, file, message)

    def warning(self, code: str, file: str, message: str) -> None:
        """Record a warning."""
        self.add('warning', code, file, message)

    def table(self, name: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Add a table shown on screen and stored in the JSON report."""
        self.tables[name] = dict(headers=list(headers), rows=[list(r) for r in rows])

    def rel(self, path: str) -> str:
        """``path`` relative to the data root when it lies under it."""
        if not path:
            return path
        root = osp.abspath(self.data_root) if self.data_root else ''
        full = osp.abspath(path)
        if root and (full == root or full.startswith(root.rstrip(os.sep) + os.sep)):
            return osp.relpath(full, root)
        return path

    def sort(self) -> None:
        """Errors first, then by code, file and message (a stable, readable order)."""
        self.findings.sort(key=lambda f: (SEVERITIES.index(f.severity), f.code,
                                          _natural(f.file), _natural(f.message)))

    @property
    def num_errors(self) -> int:
        """How many findings are errors."""
        return sum(f.severity == 'error' for f in self.findings)

    @property
    def num_warnings(self) -> int:
        """How many findings are warnings."""
        return sum(f.severity == 'warning' for f in self.findings)

    @property
    def files_per_second(self) -> float:
        """Files read per second of the reading phase."""
        return self.files / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_status(self) -> int:
        """0 when there is no error (warnings alone pass), else 1."""
        return 1 if self.num_errors else 0

    def to_dict(self) -> dict:
        """The JSON form of the report."""
        return dict(config=self.config, split=self.split, task=self.task, dataset=self.dataset,
                    data_root=self.data_root, errors=self.num_errors,
                    warnings=self.num_warnings, files=self.files,
                    seconds=round(self.seconds, 3),
                    files_per_second=round(self.files_per_second, 1), workers=self.workers,
                    findings=[asdict(f) for f in self.findings], stats=self.stats,
                    tables=self.tables)

    def write_json(self, path: str) -> None:
        """Write :meth:`to_dict` to ``path`` atomically."""
        atomic_write_text(json.dumps(self.to_dict(), indent=1, default=str) + '\n', path)

    def print(self, stream: TextIO) -> None:
        """Findings, one per line, then the tables and a summary line."""
        print(f'check-data {self.config} --split {self.split}: {self.task} dataset '
              f'{self.dataset} in {self.data_root}', file=stream)
        if self.findings:
            print(f'\nfindings ({self.num_errors} errors, {self.num_warnings} warnings):',
                  file=stream)
            for finding in self.findings:
                print(format_finding(finding), file=stream)
        for name, table in self.tables.items():
            print(f'\n{name}:', file=stream)
            for line in render_table(table['headers'], table['rows']):
                print('  ' + line, file=stream)
        verdict = 'FAILED' if self.num_errors else 'OK'
        print(f'\n{verdict}: {self.num_errors} errors, {self.num_warnings} warnings; '
              f'{self.files} files read in {self.seconds:.2f} s '
              f'({self.files_per_second:.1f} files/s, {self.workers} workers)', file=stream)


def default_workers() -> int:
    """``min(4, number of CPUs)``."""
    return max(1, min(4, os.cpu_count() or 1))


def map_files(fn: Callable[[Any], Any], items: Sequence[Any], workers: int, desc: str,
              progress: bool = True) -> List[Any]:
    """``[fn(item) for item in items]`` in ``workers`` processes, under a tqdm progress bar.

    ``fn`` must be a module-level function that catches its own errors (a reader reports a bad
    file in its result instead of raising). With ``workers == 1`` it runs in this process.
    """
    from tqdm import tqdm

    positive_int(workers, 'workers')
    bar = tqdm(total=len(items), desc=desc, unit='item', disable=not progress, leave=False)
    results: List[Any] = []
    try:
        if workers == 1 or len(items) < 2:
            for item in items:
                results.append(fn(item))
                bar.update()
            return results
        methods = multiprocessing.get_all_start_methods()
        # fork: workers inherit the imported modules instead of importing torch again
        context = multiprocessing.get_context('fork' if 'fork' in methods else None)
        chunk = max(1, min(16, len(items) // (workers * 8)))
        with ProcessPoolExecutor(min(workers, len(items)), mp_context=context) as pool:
            for result in pool.map(fn, items, chunksize=chunk):
                results.append(result)
                bar.update()
        return results
    finally:
        bar.close()


class Timer:
    """Wall-clock seconds spent inside ``with`` blocks (the reading phase)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start: Optional[float] = None

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._start is not None:
            self.seconds += time.perf_counter() - self._start
        self._start = None
