"""``densekit bench deploy``: onnxruntime against PyTorch eager for every CPU config.

Each CPU config (``*cpu*``, ``*shapes*``, ``*phantoms*``) is built with seeded random weights
(speed does not depend on their values), exported with :func:`densekit.export.export_onnx`
into a temporary folder, and its network is timed in both runtimes in one process,
alternating, median of ``repeats`` runs after a warm-up, at 1 and 2 threads (torch's
intra-op threads and onnxruntime's ``intra_op_num_threads``):

* 2D tasks: one 256x256 image through the exported network (segmentation scores at the
  input size, detection head outputs, the restored image): input megapixels per second;
* medical: one 96^3 volume through the sliding window (the config's window size, overlap 0.5,
  Gaussian blending) with the window network in each runtime: volumes per second.

The ratio column is onnxruntime / PyTorch time (below 1: onnxruntime is faster). Where
onnxruntime is less than 1.3x faster, ``where ORT time goes`` lists its most expensive op types
from one profiled run (onnxruntime's own profiler), so the table says where the time goes.
Configs that cannot be exported are listed with the reason.
"""
from __future__ import annotations

import glob
import json
import os.path as osp
import tempfile
import warnings
from collections import Counter
from typing import Callable, List, Optional

import torch

from densekit.benchmark import Row, suite, time_pair

__all__ = ['bench_deploy', 'cpu_configs', 'ort_op_shares']

CONFIG_ROOT = osp.join(osp.dirname(osp.abspath(__file__)), '..', 'configs')
CPU_MARKERS = ('cpu', 'shapes', 'phantoms')
IMAGE_SIZE = 256
VOLUME_SIZE = 96
TARGET_SPEEDUP = 1.3


def cpu_configs(only: Optional[str] = None) -> List[str]:
    """The CPU-sized configs of every task family (``only``: names containing it)."""
    found = sorted(glob.glob(osp.join(CONFIG_ROOT, '*', '*.py')))
    return [path for path in found
            if any(m in osp.basename(path) for m in CPU_MARKERS)
            and (only is None or only.lower() in osp.basename(path).lower())]


def ort_op_shares(path: str, feed: dict, threads: int, top: int = 3) -> str:
    """onnxruntime's most expensive op types on one profiled run: ``'Conv 81%, Add 9%'``."""
    from densekit.export import require_deploy

    ort = require_deploy('onnxruntime')
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as folder:
        options.profile_file_prefix = osp.join(folder, 'ort')
        session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        session.run(None, feed)
        trace = session.end_profiling()
        with open(trace) as handle:
            events = json.load(handle)
    per_op: Counter = Counter()
    for event in events:
        op = event.get('args', {}).get('op_name')
        if event.get('cat') == 'Node' and op and event.get('name', '').endswith('_kernel_time'):
            per_op[op] += float(event.get('dur', 0))
    total = sum(per_op.values()) or 1.0
    return ', '.join(f'{op} {100 * dur / total:.0f}%' for op, dur in per_op.most_common(top))


def _build(path: str, folder: str) -> tuple:
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    from densekit.export import export_graph, export_onnx
    from densekit.inference import detect_task

    cfg = Config.fromfile(path)
    cfg.setdefault('default_scope', 'densekit')
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    checkpoint = osp.join(folder, 'model.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), checkpoint)
    onnx_path = osp.join(folder, 'model.onnx')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        export_onnx(path, checkpoint, onnx_path)
    task = detect_task(cfg)
    return cfg, model, export_graph(model, task), task, onnx_path


def _case(path: str, threads: int, repeats: int, folder: str) -> Row:
    from densekit.export import onnx_session
    from densekit.tasks.medical3d.sliding_window import sliding_window_inference

    cfg, model, graph, task, onnx_path = _build(path, folder)
    name = f'{osp.basename(path)[:-3]} ({threads}t)'
    torch.set_num_threads(threads)
    session = onnx_session(onnx_path, threads)
    generator = torch.Generator().manual_seed(0)
    if task == 'medical':
        channels = int(getattr(model.backbone, 'in_channels', 1))
        volume = torch.randn(1, channels, *(VOLUME_SIZE,) * 3, generator=generator)
        roi = model._roi(volume.shape[2:])
        window = torch.randn(1, channels, *roi, generator=generator)

        def onnx_net(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {'input': x.numpy()})[0])

        def run_torch() -> object:
            with torch.inference_mode():
                return sliding_window_inference(volume, roi, 1, graph, overlap=0.5,
                                                mode='gaussian')

        def run_ort() -> object:
            return sliding_window_inference(volume, roi, 1, onnx_net, overlap=0.5,
                                            mode='gaussian')

        feed, unit, amount = {'input': window.numpy()}, 'volumes/s', 1.0
    else:
        scale = 255.0 if task in ('seg', 'det') else 1.0
        image = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator) * scale
        feed = {'input': image.numpy()}

        def run_torch() -> object:
            with torch.inference_mode():
                return graph(image)

        def run_ort() -> object:
            return session.run(None, feed)

        unit, amount = 'MP/s', IMAGE_SIZE * IMAGE_SIZE / 1e6
    t_ort, t_torch = time_pair(run_ort, run_torch, repeats=repeats)
    speedup = t_torch / t_ort
    extra = {'task': task, f'PyTorch {unit}': f'{amount / t_torch:.3g}',
             f'ORT {unit}': f'{amount / t_ort:.3g}', 'speedup': f'{speedup:.2f}x'}
    if speedup < TARGET_SPEEDUP:
        extra['where ORT time goes'] = ort_op_shares(onnx_path, feed, threads)
    return Row(name, t_ort, t_torch, extra=extra, device='cpu')


@suite('deploy')
def bench_deploy(repeats: int = 5, quick: bool = False, only: Optional[str] = None
                 ) -> List[Row]:
    """onnxruntime vs PyTorch eager for every CPU config at 1 and 2 threads (module docs)."""
    rows: List[Row] = []
    configs = cpu_configs(only)
    if quick:
        configs = configs[:3]
    before = torch.get_num_threads()
    try:
        for path in configs:
            for threads in (1, 2):
                with tempfile.TemporaryDirectory() as folder:
                    rows.append(_guarded(path, threads, repeats, folder))
    finally:
        torch.set_num_threads(before)
    return rows


def _guarded(path: str, threads: int, repeats: int, folder: str) -> Row:
    run: Callable[[], Row] = lambda: _case(path, threads, repeats, folder)  # noqa: E731
    try:
        return run()
    except Exception as err:  # not exportable: say why in the table
        reason = str(err).strip().splitlines()[0][:120] if str(err).strip() else ''
        return Row(f'{osp.basename(path)[:-3]} ({threads}t)', float('nan'),
                   extra={'not exported': f'{type(err).__name__}: {reason}'}, device='cpu')

