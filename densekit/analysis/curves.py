"""``densekit plot-log``: training curves from mmengine's ``vis_data/scalars.json``.

mmengine's ``LocalVisBackend`` appends one JSON object per logged step: training records carry
``iter`` (or ``epoch``), validation records do not. Each requested key gets its own panel, with
the training and the validation values drawn as separate series. Drawing uses matplotlib's Agg
canvas directly (no pyplot state, no display needed).
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

__all__ = ['find_scalars', 'read_scalars', 'default_keys', 'plot_curves', 'Series']

# split -> key -> [(step, value)]
Series = Dict[str, Dict[str, List[Tuple[int, float]]]]
BOOKKEEPING = ('step', 'iter', 'epoch')
TIMING = ('time', 'data_time', 'memory', 'lr')


def find_scalars(path: Union[str, Path]) -> Path:
    """The ``scalars.json`` of a work dir (its newest run), a run dir, or the file itself.

    Raises:
        FileNotFoundError: Nothing of the sort under ``path``.
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f'work dir {str(path)!r} does not exist')
    direct = path / 'vis_data' / 'scalars.json'
    if direct.is_file():
        return direct
    runs = sorted(path.glob('*/vis_data/scalars.json'), key=lambda p: p.parent.parent.name)
    if not runs:
        raise FileNotFoundError(f'no vis_data/scalars.json under {str(path)!r}: is it a work dir '
                                'of a run that logged at least once?')
    # a test run in the same work dir logs only its metrics: prefer the newest training run
    training = [run for run in runs if '"iter"' in run.read_text() or '"epoch"' in
                run.read_text()]
    return (training or runs)[-1]


def read_scalars(path: Union[str, Path]) -> Series:
    """Read a ``scalars.json`` into ``{'train': {key: [(step, value)]}, 'val': {...}}``.

    Raises:
        ValueError: A line that is not a JSON object (naming the file and line).
    """
    path = find_scalars(path)
    series: Series = {'train': {}, 'val': {}}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path}:{number} is not JSON ({err.msg})') from None
        if not isinstance(record, dict):
            raise ValueError(f'{path}:{number} is not a JSON object')
        split = 'train' if ('iter' in record or 'epoch' in record) else 'val'
        step = int(record.get('step', record.get('iter', number)))
        for key, value in record.items():
            if key in BOOKKEEPING or not isinstance(value, (int, float)) or isinstance(
                    value, bool):
                continue
            series[split].setdefault(key, []).append((step, float(value)))
    return series


def default_keys(series: Series) -> List[str]:
    """``loss`` plus every validation metric (timing keys left out)."""
    keys = [key for key in series['train'] if key == 'loss']
    keys += [key for key in series['val'] if key not in TIMING and key not in keys]
    if not keys:
        keys = [key for key in series['train'] if key not in TIMING][:4]
    return keys


def _check_keys(series: Series, keys: Sequence[str]) -> None:
    known = set(series['train']) | set(series['val'])
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise ValueError(f'keys={list(unknown)} are not in the log; it has '
                         f'{sorted(known)}')


def plot_curves(series: Series, keys: Optional[Sequence[str]] = None,
                out: Union[str, Path, None] = None, title: str = '',
                panel_size: Tuple[float, float] = (4.2, 3.0)) -> bytes:
    """Draw one panel per key (train and val as separate series); returns the PNG bytes and
    writes them to ``out`` (atomically) when given.

    Raises:
        ValueError: An empty log, or a key the log does not have.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not series['train'] and not series['val']:
        raise ValueError('the log has no scalars to plot')
    keys = list(keys) if keys else default_keys(series)
    if not keys:
        raise ValueError('keys=[]: nothing to plot')
    _check_keys(series, keys)
    cols = min(len(keys), 3)
    rows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(panel_size[0] * cols, panel_size[1] * rows), dpi=100)
    FigureCanvasAgg(fig)
    for index, key in enumerate(keys):
        ax = fig.add_subplot(rows, cols, index + 1)
        for split, style in (('train', dict(color='tab:blue', linewidth=1.2)),
                             ('val', dict(color='tab:orange', marker='o', markersize=4,
                                          linewidth=1.5))):
            points = series[split].get(key)
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, label=f'{split} ({len(points)})', **style)
        ax.set_title(key)
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png')
    data = buffer.getvalue()
    if out is not None:
        from densekit.fileio import atomic_write_bytes

        atomic_write_bytes(data, str(out))
    return data
