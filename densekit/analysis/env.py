"""``densekit env``: what a bug report needs to know about the machine and the stack.

Versions of Python and the libraries densekit runs on (each "not installed" when absent), mmcv's
compiled ops, CUDA / cuDNN and the GPUs, the CPU model and its vector ISA (from
``/proc/cpuinfo``), the thread counts, and the state of densekit's CPU fast paths.
"""
from __future__ import annotations

import importlib
import os
import platform
import sys
from typing import Dict, List, Optional, Tuple

__all__ = ['collect_env', 'format_env', 'cpu_info', 'PACKAGES']

NOT_INSTALLED = 'not installed'

# (label, distribution name, import name)
PACKAGES: Tuple[Tuple[str, str, str], ...] = (
    ('torch', 'torch', 'torch'),
    ('torchvision', 'torchvision', 'torchvision'),
    ('mmengine', 'mmengine', 'mmengine'),
    ('mmcv', 'mmcv', 'mmcv'),
    ('mmseg', 'mmsegmentation', 'mmseg'),
    ('mmdet', 'mmdet', 'mmdet'),
    ('MONAI', 'monai', 'monai'),
    ('albumentations', 'albumentations', 'albumentations'),
    ('kornia', 'kornia', 'kornia'),
    ('nibabel', 'nibabel', 'nibabel'),
    ('onnxruntime', 'onnxruntime', 'onnxruntime'),
    ('numpy', 'numpy', 'numpy'),
    ('opencv', 'opencv-python', 'cv2'),
    ('tensorboard', 'tensorboard', 'tensorboard'),
)

# the vector extensions worth knowing about for CPU speed, in the order they are printed
ISA_FLAGS = ('sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx512_bf16',
             'amx_tile', 'amx_bf16', 'amx_int8')


def package_version(distribution: str, module: str) -> str:
    """The installed version of ``distribution`` (or of ``module``), or ``'not installed'``."""
    from importlib import metadata

    for name in (distribution, module):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        return str(getattr(importlib.import_module(module), '__version__', 'unknown version'))
    except ImportError:
        return NOT_INSTALLED


def mmcv_ops() -> str:
    """Whether mmcv's compiled ops (``mmcv._ext``) import, and why not."""
    try:
        importlib.import_module('mmcv._ext')
    except ImportError as err:
        return f'without compiled ops ({err})'
    except Exception as err:  # a broken build raises whatever the loader raises
        return f'compiled ops fail to load ({type(err).__name__}: {err})'
    return 'with compiled ops (mmcv._ext)'


def cpu_info(cpuinfo: str = '/proc/cpuinfo') -> Dict[str, object]:
    """CPU model, logical core count and vector ISA flags (Linux ``/proc/cpuinfo``)."""
    model: Optional[str] = None
    flags: List[str] = []
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(':')
                key = key.strip()
                if key == 'model name' and model is None:
                    model = value.strip()
                elif key in ('flags', 'Features') and not flags:
                    flags = value.split()
                if model and flags:
                    break
    except OSError:
        pass
    isa = [flag for flag in ISA_FLAGS if flag in flags]
    return dict(model=model or platform.processor() or platform.machine() or 'unknown',
                logical_cores=os.cpu_count(), isa=isa,
                avx2='avx2' in flags, avx512='avx512f' in flags)


def _torch_info() -> Dict[str, object]:
    import torch

    info: Dict[str, object] = dict(
        cuda_built=torch.version.cuda or 'CPU-only build',
        cuda_available=torch.cuda.is_available(),
        cudnn=(str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available()
               else 'not available'),
        gpus=[], torch_threads=torch.get_num_threads(),
        interop_threads=torch.get_num_interop_threads(),
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        mkldnn=torch.backends.mkldnn.is_available())
    if torch.cuda.is_available():
        gpus = []
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            gpus.append(f'{index}: {props.name}, {props.total_memory / 2**30:.1f} GiB, '
                        f'compute {props.major}.{props.minor}')
        info['gpus'] = gpus
    return info


def _fast_paths() -> Dict[str, object]:
    from densekit import accel

    return dict(env=os.environ.get(accel.ENV_VAR, '(unset: default on)'),
                enabled={name: accel.fast_paths_enabled(name) for name in accel.PATHS})


def collect_env() -> Dict[str, object]:
    """Everything ``densekit env`` prints, as a JSON-able dict."""
    from densekit.cli import VERSION

    versions = {label: package_version(dist, module) for label, dist, module in PACKAGES}
    if versions['mmcv'] != NOT_INSTALLED:
        versions['mmcv'] += ' ' + mmcv_ops()
    threads = {name: os.environ.get(name, '(unset)')
               for name in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')}
    return dict(densekit=VERSION, python=sys.version.replace('\n', ' '),
                platform=platform.platform(), versions=versions, torch=_torch_info(),
                cpu=cpu_info(), thread_env=threads, fast_paths=_fast_paths())


def format_env(env: Dict[str, object]) -> str:
    """The report as aligned ``name: value`` lines, ready to paste into an issue."""
    lines = [f'{"densekit":<22}{env["densekit"]}', f'{"Python":<22}{env["python"]}',
             f'{"platform":<22}{env["platform"]}']
    lines += [f'{name:<22}{version}' for name, version in env['versions'].items()]
    tinfo = env['torch']
    lines += [f'{"CUDA (torch build)":<22}{tinfo["cuda_built"]}',
              f'{"CUDA available":<22}{tinfo["cuda_available"]}',
              f'{"cuDNN":<22}{tinfo["cudnn"]}',
              f'{"GPUs":<22}{"; ".join(tinfo["gpus"]) or "none"}']
    cpu = env['cpu']
    lines += [f'{"CPU":<22}{cpu["model"]} ({cpu["logical_cores"]} logical cores)',
              f'{"CPU ISA":<22}{" ".join(cpu["isa"]) or "none of " + ", ".join(ISA_FLAGS)} '
              f'(AVX2 {"yes" if cpu["avx2"] else "no"}, '
              f'AVX-512 {"yes" if cpu["avx512"] else "no"})',
              f'{"torch CPU kernels":<22}{tinfo["cpu_capability"]}, oneDNN '
              f'{"yes" if tinfo["mkldnn"] else "no"}',
              f'{"threads":<22}torch {tinfo["torch_threads"]}, inter-op '
              f'{tinfo["interop_threads"]}, '
              + ', '.join(f'{k}={v}' for k, v in env['thread_env'].items())]
    fast = env['fast_paths']
    on = [name for name, enabled in fast['enabled'].items() if enabled]
    off = [name for name, enabled in fast['enabled'].items() if not enabled]
    lines.append(f'{"fast paths":<22}on: {", ".join(on) or "none"}; off: '
                 f'{", ".join(off) or "none"} (DENSEKIT_FAST_PATHS={fast["env"]})')
    return '\n'.join(lines)
