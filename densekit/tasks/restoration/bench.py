"""``densekit bench restoration``: throughput, efficiency and tiling cost of every model.

For each model (the CPU-sized configs and the paper-size ones) at one fixed input size:
output megapixels per second, GFLOP per image (convolutions and matmuls, counted with
``torch.utils.flop_counter``), achieved GFLOP/s and its share of the machine's fp32 matmul
GFLOP/s (a 2048x2048 matmul measured in the same run), peak memory; and for the CPU-sized
models the time of tiled inference (default tile 512, overlap 16) against whole-image inference
on an image that needs several tiles. A last row restores a 4000x3000 image tiled and reports
its peak working memory: tile bands and activations (the input tensor exists beforehand and the
output rows are streamed to a sink); it is one run, timed under the memory profiler. Other
times are medians of ``repeats`` runs after a warm-up.
"""
from __future__ import annotations

import os.path as osp
import time
from typing import List, Optional, Tuple

import torch
from torch.utils.flop_counter import FlopCounterMode

from densekit.benchmark import Row, peak_memory_mb, suite, time_pair

__all__ = ['MODELS_TO_BENCH', 'bench_restoration', 'matmul_gflops']

CONFIG_DIR = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..', '..', 'configs',
                      'restoration')
# (case name, config file, also measure the tiling overhead: the fast CPU-sized models)
MODELS_TO_BENCH: List[Tuple[str, str, bool]] = [
    ('EDSR-cpu x2 (8b32c)', 'edsr_baseline_x2_cpu_photos.py', True),
    ('FSRCNN x2', 'fsrcnn_x2_cpu_photos.py', True),
    ('CARN-M-cpu x2 (32c)', 'carn-m_x2_cpu_photos.py', True),
    ('SCNet x2 (16b64c)', 'scnet_x2_cpu_photos.py', True),
    ('ResUNet-cpu derain', 'derain_resunet_cpu_rain.py', True),
    ('DRSformer-tiny derain', 'drsformer_tiny_cpu_rain.py', False),  # global attention
    ('EDSR-baseline x2', 'edsr_baseline_x2_div2k.py', False),
    ('CARN x2', 'carn_x2_div2k.py', False),
    ('CARN-M x2', 'carn-m_x2_div2k.py', False),
    ('EDSR x2 (large)', 'edsr_large_x2_div2k.py', False),
    ('DRSformer derain', 'drsformer_rain200h.py', False),
]


def _device() -> torch.device:
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def matmul_gflops(repeats: int = 5, size: int = 2048) -> Tuple[float, float]:
    """Median time and GFLOP/s of a ``size x size`` fp32 matmul on the benchmark device."""
    a = torch.randn(size, size, device=_device())
    b = torch.randn(size, size, device=_device())
    seconds, _ = time_pair(lambda: a @ b, None, repeats=repeats)
    return seconds, 2 * size ** 3 / seconds / 1e9


def _build(config: str) -> torch.nn.Module:
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from densekit.registry import MODELS

    init_default_scope('densekit')
    cfg = Config.fromfile(osp.join(CONFIG_DIR, config))
    return MODELS.build(cfg.model).to(_device()).eval()


def _flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as counter:
        model.restore(x)
    return float(counter.get_total_flops())


def _restore_tiled(model: torch.nn.Module, image: torch.Tensor, tile: int, overlap: int) -> None:
    from densekit.tasks.restoration.tiling import tiled_restore

    rows: List[int] = []
    tiled_restore(model.restore, image, model.scale, tile, overlap, align=model.size_divisor,
                  sink=lambda row, block: rows.append(row), device=_device())


def _model_row(name: str, model: torch.nn.Module, size: int, peak: float, repeats: int,
               tiling: Optional[Tuple[int, int, int, int]]) -> Row:
    x = torch.rand(1, 3, size, size, device=_device())
    gflop = _flops(model, x) / 1e9
    seconds, _ = time_pair(lambda: model.restore(x), None, repeats=repeats)
    memory = peak_memory_mb(lambda: model.restore(x))
    out_mp = (size * model.scale) ** 2 / 1e6
    params = sum(p.numel() for p in model.parameters()) / 1e6
    extra = {'params M': f'{params:.3f}', 'GFLOP/img': f'{gflop:.2f}',
             'MP/s out': f'{out_mp / seconds:.3f}', 'GFLOP/s': f'{gflop / seconds:.1f}',
             '% matmul': f'{100 * gflop / seconds / peak:.0f}%'}
    if tiling is not None:
        height, width, tile, overlap = tiling
        image = torch.rand(1, 3, height, width)
        whole, tiled = time_pair(lambda: model.restore(image.to(_device())),
                                 lambda: _restore_tiled(model, image, tile, overlap),
                                 repeats=repeats)
        extra['tiled vs whole'] = f'{100 * (tiled / whole - 1):+.1f}% ({height}x{width})'
    return Row(case=f'{name} @{size}x{size}', densekit_s=seconds, densekit_mem_mb=memory,
               extra=extra)


@suite('restoration')
def bench_restoration(repeats: int = 5, quick: bool = False) -> List[Row]:
    """Every restoration model at a fixed size; tiling overhead; a 4000x3000 tiled run.

    On the CPU it runs on the idle cores only (``idle_cpu_threads``); the matmul reference
    uses the same threads, and the thread count is printed in the first row.
    """
    from densekit.tasks.restoration.hooks import idle_cpu_threads

    previous = torch.get_num_threads()
    if not torch.cuda.is_available():  # busy cores make multi-threaded timings meaningless
        torch.set_num_threads(idle_cpu_threads())
    try:
        return _bench(repeats, quick)
    finally:
        torch.set_num_threads(previous)


def _bench(repeats: int, quick: bool) -> List[Row]:
    from densekit.tasks.restoration.inference import DEFAULT_OVERLAP, DEFAULT_TILE

    torch.manual_seed(0)
    size = 48 if quick else 64
    tiling = (160, 144, 64, 8) if quick else (576, 640, DEFAULT_TILE, DEFAULT_OVERLAP)
    big = (300, 400) if quick else (3000, 4000)
    matmul_s, peak = matmul_gflops(repeats)
    rows = [Row(case=f'matmul 2048x2048 fp32 ({torch.get_num_threads()} threads)',
                densekit_s=matmul_s, extra={'GFLOP/s': f'{peak:.1f}', '% matmul': '100%'})]
    for name, config, with_tiling in MODELS_TO_BENCH:
        if quick and 'cpu' not in config:
            continue
        model = _build(config)
        rows.append(_model_row(name, model, size, peak, repeats, tiling if with_tiling else None))
        print(f'  measured {name}', flush=True)
    model = _build('fsrcnn_x2_cpu_photos.py')
    image = torch.rand(1, 3, *big)
    tile, overlap = (64, 8) if quick else (DEFAULT_TILE, DEFAULT_OVERLAP)
    start = time.perf_counter()  # one run, under the memory profiler: 12 MP is slow on a CPU
    memory = peak_memory_mb(lambda: _restore_tiled(model, image, tile, overlap))
    seconds = time.perf_counter() - start
    rows.append(Row(case=f'FSRCNN x2 {big[1]}x{big[0]} tiled ({tile}/{overlap}), 1 run',
                    densekit_s=seconds, densekit_mem_mb=memory,
                    extra={'MP/s out': f'{4 * big[0] * big[1] / 1e6 / seconds:.3f}'}))
    return rows
