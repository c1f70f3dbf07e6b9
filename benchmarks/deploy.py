"""``densekit bench deploy`` / ``large-image``: onnxruntime against PyTorch eager for every CPU
config, and segmentation of large images in bounded memory.

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
import time
import warnings
from collections import Counter
from typing import Callable, List, Optional

import torch

from benchmarks.harness import Row, suite, time_pair
from densekit.threads import torch_threads

__all__ = ['bench_deploy', 'cpu_configs', 'ort_op_shares']

CONFIG_ROOT = osp.join(osp.dirname(osp.abspath(__file__)), '..', 'configs')
CPU_MARKERS = ('photos', 'shapes', 'phantoms')
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
    from densekit.windowed.engine import sliding_window_inference

    cfg, model, graph, task, onnx_path = _build(path, folder)
    name = f'{osp.basename(path)[:-3]} ({threads}t)'
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
    for path in configs:
        for threads in (1, 2):
            with tempfile.TemporaryDirectory() as folder, torch_threads(threads):
                rows.append(_guarded(path, threads, repeats, folder))
    return rows


def _guarded(path: str, threads: int, repeats: int, folder: str) -> Row:
    run: Callable[[], Row] = lambda: _case(path, threads, repeats, folder)  # noqa: E731
    try:
        return run()
    except Exception as err:  # not exportable: say why in the table
        reason = str(err).strip().splitlines()[0][:120] if str(err).strip() else ''
        return Row(f'{osp.basename(path)[:-3]} ({threads}t)', float('nan'),
                   extra={'not exported': f'{type(err).__name__}: {reason}'}, device='cpu')



LARGE_SIZES = (2048, 4096, 8000)
PEER_MAX_SIDE = 4096  # mmseg whole-image inference beyond this needs several GB


def _large_case(model: torch.nn.Module, image: object, with_peer: bool) -> tuple:
    """(windowed s, peer s, windowed RSS MiB, peer RSS MiB) for one image."""
    from mmengine.dataset import pseudo_collate
    from mmseg.structures import SegDataSample

    from benchmarks.harness import peak_rss_mb
    from densekit.tasks.segmentation.windowed import segment_windows

    side = image.shape[:2]
    timing: dict = {}

    def ours() -> None:
        start = time.perf_counter()
        segment_windows(model, image, 512, 0.125, margin=16)
        timing['ours'] = time.perf_counter() - start

    def peer() -> None:
        sample = SegDataSample(metainfo=dict(img_shape=side, ori_shape=side))
        batch = pseudo_collate([dict(inputs=torch.from_numpy(image).permute(2, 0, 1),
                                     data_samples=sample)])
        start = time.perf_counter()
        with torch.no_grad():
            model.test_step(batch)
        timing['peer'] = time.perf_counter() - start

    ours_mb = peak_rss_mb(ours)
    peer_mb = peak_rss_mb(peer) if with_peer else None
    return timing['ours'], timing.get('peer'), ours_mb, peer_mb


@suite('large-image')
def bench_large_image(repeats: int = 1, quick: bool = False, only: Optional[str] = None
                      ) -> List[Row]:
    """Segmentation of one large photo: windowed labels vs mmseg whole-image inference.

    The Semantic FPN CPU config (seeded random weights) on scikit-image's ``astronaut``
    resized to 2048^2, 4096^2 and 8000^2 (``quick``: 1024^2 only), RGB uint8. densekit runs
    :func:`densekit.tasks.segmentation.windowed.segment_windows` (512-px windows, overlap
    0.125, margin 16); the peer is mmseg's whole-image ``test_step`` (up to 4096^2). Each is
    one timed run (``repeats`` are not worth their minutes here); memory is the rise of the
    process's resident-set high-water mark during the run (:func:`peak_rss_mb`), next to the
    size of the whole-image class scores mmseg keeps.
    """
    import cv2
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    from skimage import data as photos

    config = osp.join(CONFIG_ROOT, 'segmentation', 'fpn_r18-tiny_1xb8-2000i_shapes-128x128.py')
    cfg = Config.fromfile(config)
    init_default_scope('densekit')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    classes = int(model.decode_head.num_classes)
    rows = []
    for side in ((1024,) if quick else LARGE_SIZES):
        name = f'Semantic FPN {side}x{side}, {classes} classes'
        if only is not None and only.lower() not in name.lower():
            continue
        image = cv2.resize(photos.astronaut()[..., ::-1], (side, side),
                           interpolation=cv2.INTER_CUBIC)
        ours_s, peer_s, ours_mb, peer_mb = _large_case(model, image, side <= PEER_MAX_SIDE)
        scores_mb = classes * side * side * 4 / 2 ** 20
        rows.append(Row(name, ours_s, peer_s, ours_mb, peer_mb, extra={
            'MiB columns': 'peak RSS rise', 'whole-image scores MiB': f'{scores_mb:.0f}',
            'image MiB': f'{image.nbytes / 2 ** 20:.0f}'}, device='cpu'))
    return rows
