"""``densekit bench restoration``: throughput, efficiency and tiling cost of every model.

For each model (the CPU-sized configs and the paper-size ones) at one fixed input size:
output megapixels per second, GFLOP per image (convolutions and matmuls, counted with
``torch.utils.flop_counter``), achieved GFLOP/s and its share of the machine's fp32 matmul
GFLOP/s (a 2048x2048 matmul measured in the same run), peak memory; and for the CPU-sized
models the time of tiled inference (default tile 512, overlap 16) against whole-image inference
on an image that needs several tiles. A 4000x3000 row restores a tensor tiled and reports its
peak working memory: tile bands and activations (the input tensor exists beforehand and the
output rows are streamed to a sink); it is one run, timed under the memory profiler.

The last row is ``densekit infer``'s real path on a file: a 6000x4000 PNG photo (scikit-image's
``coffee`` upscaled 10x) super-resolved x2 by FSRCNN into a 12000x8000 PNG, in a fresh
subprocess (:func:`file_peak_rss`). Its memory is the rise of the process's resident-set
high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``) above the resident size
after imports, model building and a small warm-up image: everything the file costs, decoded
input, tiles, activations, output bands, PNG encoding and allocator slack included.

One row times RC-LUT's table inference against FSRCNN x2 on a real photo
(:func:`lut_vs_fsrcnn`).

Other times are medians of ``repeats`` runs after a warm-up. ``only`` (``--only TEXT``) runs
just the cases whose name contains TEXT (e.g. ``--only 6000x4000``).
"""
from __future__ import annotations

import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import torch

from benchmarks.harness import Row, peak_memory_mb, suite, time_pair
from densekit.analysis.flops import call_flops

__all__ = ['MODELS_TO_BENCH', 'bench_restoration', 'matmul_gflops', 'file_peak_rss',
           'lut_vs_fsrcnn']

CONFIG_DIR = osp.join(osp.dirname(osp.abspath(__file__)), '..', 'configs',
                      'restoration')
# (case name, config file, also measure the tiling overhead: the fast CPU-sized models)
MODELS_TO_BENCH: List[Tuple[str, str, bool]] = [
    ('EDSR-cpu x2 (8b32c)', 'edsr_x2c32b8_1xb4-4min_photos.py', True),
    ('FSRCNN x2', 'fsrcnn_x2d56s12m4_1xb4-4min_photos.py', True),
    ('CARN-M-cpu x2 (32c)', 'carn-m_x2c32b3_1xb4-4min_photos.py', True),
    ('SCNet x2 (16b64c)', 'scnet_x2c64b16_1xb4-4min_photos.py', True),
    ('ResUNet-cpu derain', 'resunet_c16_1xb4-4min_photos-rain.py', True),
    # global attention: no tiling
    ('DRSformer-tiny derain', 'drsformer-tiny_c16_1xb4-10min_photos-rain.py', False),
    ('EDSR-baseline x2', 'edsr_x2c64b16_1xb16-300k_div2k.py', False),
    ('CARN x2', 'carn_x2c64b3_1xb16-300k_div2k.py', False),
    ('CARN-M x2', 'carn-m_x2c64b3_1xb16-300k_div2k.py', False),
    ('EDSR x2 (large)', 'edsr_x2c256b32_1xb16-300k_div2k.py', False),
    ('DRSformer derain', 'drsformer_c48_1xb8-300k_rain200h.py', False),
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


def _restore_tiled(model: torch.nn.Module, image: torch.Tensor, tile: int, overlap: int) -> None:
    from densekit.tasks.restoration.tiling import tiled_restore

    rows: List[int] = []
    tiled_restore(model.restore, image, model.scale, tile, overlap, align=model.size_divisor,
                  sink=lambda row, block: rows.append(row), device=_device())


def _model_row(name: str, model: torch.nn.Module, size: int, peak: float, repeats: int,
               tiling: Optional[Tuple[int, int, int, int]]) -> Row:
    x = torch.rand(1, 3, size, size, device=_device())
    gflop = call_flops(lambda: model.restore(x)) / 1e9
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
def bench_restoration(repeats: int = 5, quick: bool = False, only: Optional[str] = None
                      ) -> List[Row]:
    """Every restoration model at a fixed size; tiling overhead; a 4000x3000 tiled run; a
    6000x4000 PNG file restored by the inference handler (peak RSS in a fresh process).

    On the CPU it runs on the idle cores only (``idle_cpu_threads``); the matmul reference
    uses the same threads, and the thread count is printed in the first row. ``only`` keeps
    the cases whose name contains it (case-insensitive; the matmul row comes with any model
    row, whose efficiency it is the reference of).
    """
    from densekit.threads import idle_threads

    with idle_threads():  # busy cores make multi-threaded timings meaningless
        return _bench(repeats, quick, only)


def _bench(repeats: int, quick: bool, only: Optional[str] = None) -> List[Row]:
    from densekit.tasks.restoration.inference import DEFAULT_OVERLAP, DEFAULT_TILE

    def wanted(case: str) -> bool:
        return only is None or only.lower() in case.lower()

    torch.manual_seed(0)
    size = 48 if quick else 64
    tiling = (160, 144, 64, 8) if quick else (576, 640, DEFAULT_TILE, DEFAULT_OVERLAP)
    big = (300, 400) if quick else (3000, 4000)
    huge = (400, 600) if quick else (4000, 6000)
    models = [(name, config, with_tiling) for name, config, with_tiling in MODELS_TO_BENCH
              if (not quick or 'photos' in config) and wanted(f'{name} @{size}x{size}')]
    rows: List[Row] = []
    if models:
        matmul_s, peak = matmul_gflops(repeats)
        rows.append(Row(case=f'matmul 2048x2048 fp32 ({torch.get_num_threads()} threads)',
                        densekit_s=matmul_s,
                        extra={'GFLOP/s': f'{peak:.1f}', '% matmul': '100%'}))
    for name, config, with_tiling in models:
        model = _build(config)
        rows.append(_model_row(name, model, size, peak, repeats, tiling if with_tiling else None))
        print(f'  measured {name}', flush=True)
    case = 'RC-LUT tables x2 vs FSRCNN x2 network (peer), photo'
    if wanted(case):
        rows.append(lut_vs_fsrcnn(repeats, quick))
    tile, overlap = (64, 8) if quick else (DEFAULT_TILE, DEFAULT_OVERLAP)
    case = f'FSRCNN x2 {big[1]}x{big[0]} tiled ({tile}/{overlap}), 1 run'
    if wanted(case):
        model = _build('fsrcnn_x2d56s12m4_1xb4-4min_photos.py')
        image = torch.rand(1, 3, *big)
        start = time.perf_counter()  # one run, under the memory profiler: 12 MP is slow on a CPU
        memory = peak_memory_mb(lambda: _restore_tiled(model, image, tile, overlap))
        seconds = time.perf_counter() - start
        rows.append(Row(case=case, densekit_s=seconds, densekit_mem_mb=memory,
                        extra={'MP/s out': f'{4 * big[0] * big[1] / 1e6 / seconds:.3f}'}))
    case = (f'FSRCNN x2 {huge[1]}x{huge[0]} PNG file -> PNG (infer handler, '
            f'{DEFAULT_TILE}/{DEFAULT_OVERLAP}), peak RSS, fresh process')
    if wanted(case):
        result = file_peak_rss(*huge, config='fsrcnn_x2d56s12m4_1xb4-4min_photos.py')
        rows.append(Row(case=case, densekit_s=result['seconds'],
                        densekit_mem_mb=result['peak_rss_mib'],
                        extra={'MP/s out': f'{4 * huge[0] * huge[1] / 1e6 / result["seconds"]:.3f}',
                               'baseline RSS MiB': f'{result["baseline_rss_mib"]:.0f}'}))
    return rows


def lut_vs_fsrcnn(repeats: int = 5, quick: bool = False) -> Row:
    """RC-LUT table inference (``rclut_x2_1xb4-4min_photos.py`` converted) against FSRCNN x2
    (``fsrcnn_x2d56s12m4_1xb4-4min_photos.py``) on scikit-image's ``coffee`` photo (400x600;
    96x128 quick),
    uint8 RGB in, uint8 RGB out for both (luma through the model, chroma MATLAB bicubic),
    alternating in one process, median of at least 5 runs. The weights are untrained: neither
    time depends on their values. The tables run in numpy on the CPU (mostly one thread).
    """
    import numpy as np
    from skimage import data

    from densekit.tasks.restoration.lut import convert_to_luts

    photo = data.coffee()[:96, :128] if quick else data.coffee()
    torch.manual_seed(0)
    lut = convert_to_luts(_build('rclut_x2_1xb4-4min_photos.py').cpu())
    fsrcnn = _build('fsrcnn_x2d56s12m4_1xb4-4min_photos.py')

    def run_fsrcnn() -> np.ndarray:
        x = torch.from_numpy(photo).to(_device()).permute(2, 0, 1)[None].float() / 255.0
        return (fsrcnn.restore(x)[0].permute(1, 2, 0) * 255.0).round().byte().cpu().numpy()

    lut_s, fsrcnn_s = time_pair(lambda: lut.restore_rgb(photo), run_fsrcnn,
                                repeats=max(repeats, 5))
    out_mp = photo.shape[0] * photo.shape[1] * 4 / 1e6
    return Row(case=f'RC-LUT tables x2 vs FSRCNN x2 network (peer), photo '
                    f'{photo.shape[1]}x{photo.shape[0]}',
               densekit_s=lut_s, peer_s=fsrcnn_s,
               extra={'MP/s out tables': f'{out_mp / lut_s:.3f}',
                      'MP/s out FSRCNN': f'{out_mp / fsrcnn_s:.3f}',
                      'table bytes': str(lut.nbytes)})


# Runs in a fresh interpreter with only the public handler API, so that the same measurement
# can be made on another checkout (PYTHONPATH) for a before/after comparison.
_RSS_CHILD = r"""
import ctypes, ctypes.util, gc, json, os, sys, time
import cv2, numpy as np, torch
config, source, out_dir, threads = sys.argv[1:5]
torch.set_num_threads(int(threads))
from mmengine.config import Config
from mmengine.registry import init_default_scope
from densekit.inference import InferOptions
from densekit.registry import MODELS
from densekit.tasks.restoration.inference import restoration_handler
init_default_scope('densekit')
cfg = Config.fromfile(config)
torch.manual_seed(0)
model = MODELS.build(cfg.model).eval()
handler = restoration_handler(cfg, model, InferOptions(progress=False))
warm = os.path.join(out_dir, 'warmup.png')  # lazy initialisation is not the image's cost
cv2.imwrite(warm, cv2.resize(cv2.imread(source, cv2.IMREAD_REDUCED_COLOR_8), (96, 64)))
handler.handle(warm, os.path.join(out_dir, 'warmup'))

def kib(name):
    with open('/proc/self/status') as status:
        return next(int(line.split()[1]) for line in status if line.startswith(name + ':'))

gc.collect()
ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6').malloc_trim(0)
with open('/proc/self/clear_refs', 'w') as refs:
    refs.write('5')  # reset VmHWM to the current resident size
base = kib('VmRSS')
start = time.perf_counter()
written = handler.handle(source, out_dir)
seconds = time.perf_counter() - start
print(json.dumps(dict(peak_rss_mib=(kib('VmHWM') - base) / 1024, baseline_rss_mib=base / 1024,
                      seconds=seconds, output=written[0])))
"""


def _photo_png(path: str, height: int, width: int) -> None:
    """Scikit-image's ``coffee`` photo (400x600) resized bicubically to ``height x width``."""
    import cv2
    from skimage import data

    photo = cv2.resize(data.coffee(), (width, height), interpolation=cv2.INTER_CUBIC)
    if not cv2.imwrite(path, photo[..., ::-1]):
        raise OSError(f'could not write the benchmark photo {path}')


def file_peak_rss(height: int = 4000, width: int = 6000,
                  config: str = 'fsrcnn_x2d56s12m4_1xb4-4min_photos.py',
                  pythonpath: Optional[str] = None,
                  work_dir: Optional[str] = None, keep_output: bool = False) -> Dict[str, Any]:
    """Restore a ``height x width`` PNG photo to a file in a fresh process; its peak RSS rise.

    The child builds ``config``'s model (untrained weights: the memory does not depend on
    them), the inference handler (default tile and overlap) and warms up on a small image;
    then the resident size is taken as the baseline, the kernel's high-water mark is reset
    and the file is read, restored and written by ``handler.handle``.

    Args:
        height: Input height in pixels.
        width: Input width in pixels.
        config: A config file in ``configs/restoration`` (or a path).
        pythonpath: Run the child on another checkout of densekit (a before/after run).
        work_dir: Folder for the input and output (default: a temporary folder, removed).
        keep_output: Move the output file into ``work_dir`` (its path is ``result['output']``).

    Returns:
        ``peak_rss_mib`` (MiB above the baseline), ``baseline_rss_mib``, ``seconds`` (the
        ``handle`` call) and ``output``.

    Raises:
        ValueError: For sizes below 64 pixels, or ``keep_output`` without ``work_dir``.
        RuntimeError: If the child fails (its stderr is included).
    """
    for name, value in (('height', height), ('width', width)):
        if not isinstance(value, int) or value < 64:
            raise ValueError(f'{name} must be an int >= 64 pixels, got {value!r}')
    if keep_output and work_dir is None:
        raise ValueError('keep_output=True needs a work_dir to keep the output in')
    if not osp.isfile(config):
        config = osp.join(CONFIG_DIR, config)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        source = osp.join(tmp, f'photo_{width}x{height}.png')
        _photo_png(source, height, width)
        env = dict(os.environ)
        if pythonpath is not None:
            env['PYTHONPATH'] = os.pathsep.join([pythonpath, env.get('PYTHONPATH', '')])
        proc = subprocess.run([sys.executable, '-c', _RSS_CHILD, osp.abspath(config), source,
                               tmp, str(torch.get_num_threads())],
                              capture_output=True, text=True, env=env, cwd=tmp)
        if proc.returncode != 0:
            raise RuntimeError(f'the peak-RSS child failed (exit {proc.returncode}):\n'
                               f'{proc.stderr[-3000:]}')
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if keep_output:
            kept = osp.join(work_dir, osp.basename(result['output']))
            os.replace(result['output'], kept)
            result['output'] = kept
    return result
