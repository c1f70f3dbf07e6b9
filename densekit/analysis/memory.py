"""Peak memory of a call and the device it ran on: the measurements the medical planner and the
benchmarks share.

:func:`peak_memory_mb` is the tensor peak (CUDA allocator statistics, or the profiler's CPU
allocation events); :func:`peak_rss_mb` the rise of the process's resident set (Linux).
"""
from __future__ import annotations

import gc
import itertools
from typing import Callable, List, Optional, Union

import torch

__all__ = ['DeviceLike', 'resolve_device', 'synchronize', 'cpu_tensor_peak_mb', 'peak_memory_mb',
           'peak_rss_mb']

DeviceLike = Union[str, torch.device, None]


def resolve_device(*objs: object) -> torch.device:
    """The device the work on ``objs`` runs on.

    ``objs`` may be modules (their first parameter or buffer), tensors, ``torch.device`` or
    device strings, and lists/tuples/dicts of these. A non-CPU device wins over the CPU (the
    work ran on the accelerator; CPU tensors around it are inputs still to be moved); nothing
    found means the CPU.

    Raises:
        TypeError: For an object of another type.
        ValueError: For a bad device string, or two different accelerator devices.
    """
    found: List[torch.device] = []

    def visit(obj: object) -> None:
        if isinstance(obj, torch.device):
            found.append(obj)
        elif isinstance(obj, str):
            try:
                found.append(torch.device(obj))
            except RuntimeError as err:
                raise ValueError(f'device must name a torch device (e.g. "cpu", "cuda:0"), '
                                 f'got {obj!r}') from err
        elif isinstance(obj, torch.Tensor):
            found.append(obj.device)
        elif isinstance(obj, torch.nn.Module):
            for tensor in itertools.chain(obj.parameters(), obj.buffers()):
                found.append(tensor.device)
                break
        elif isinstance(obj, dict):
            for value in obj.values():
                visit(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                visit(value)
        elif obj is not None:
            raise TypeError('resolve_device takes modules, tensors, devices, device strings '
                            f'and lists/tuples/dicts of them, got {type(obj).__name__}')

    for obj in objs:
        visit(obj)
    accelerators = {_with_index(d) for d in found if d.type != 'cpu'}
    if len(accelerators) > 1:
        raise ValueError(f'the work spans several accelerator devices '
                         f'{sorted(map(str, accelerators))}; benchmark one device at a time')
    return accelerators.pop() if accelerators else torch.device('cpu')


def _with_index(device: torch.device) -> torch.device:
    """``cuda`` -> ``cuda:<current>`` (where CUDA is available), so equal devices compare equal."""
    if device.type == 'cuda' and device.index is None and torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return device


def synchronize(device: DeviceLike = None) -> None:
    """Wait for queued work on ``device`` (CUDA); nothing on the CPU.

    ``None`` (device unknown) synchronises CUDA if this process has initialised it.
    """
    if device is None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        return
    device = torch.device(device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def cpu_tensor_peak_mb(fn: Callable[[], object]) -> float:
    """Peak of the running total of CPU tensor allocations (profiler events) while ``fn`` runs."""
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


def _cuda_peak_mb(fn: Callable[[], object], device: torch.device) -> float:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def peak_memory_mb(fn: Callable[[], object], device: DeviceLike = None) -> float:
    """Peak tensor memory (MiB) that ``fn`` allocates on ``device``.

    On CUDA: ``torch.cuda.max_memory_allocated`` above what was allocated before, synchronised.
    On the CPU: the profiler's allocation events replayed in time order, the maximum of the
    running total. ``None`` picks the device by what ``fn`` does: CUDA if it allocated CUDA
    memory (only looked at where CUDA is initialised), else the CPU (``fn`` then runs twice).
    """
    gc.collect()
    if device is None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            cuda = torch.device('cuda', torch.cuda.current_device())
            before = torch.cuda.memory_stats(cuda).get('allocation.all.allocated', 0)
            peak = _cuda_peak_mb(fn, cuda)
            if torch.cuda.memory_stats(cuda).get('allocation.all.allocated', 0) > before:
                return peak
        return cpu_tensor_peak_mb(fn)
    device = torch.device(device)
    if device.type == 'cuda':
        return _cuda_peak_mb(fn, device)
    if device.type != 'cpu':
        raise ValueError(f'peak memory is measured on cpu or cuda devices, got {device}')
    return cpu_tensor_peak_mb(fn)


def _status_kib(field_name: str) -> int:
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith(field_name + ':'):
                return int(line.split()[1])
    raise OSError(f'{field_name} not in /proc/self/status')


def peak_rss_mb(fn: Callable[[], object]) -> Optional[float]:
    """How far the process's resident set size rises above its level before ``fn`` (MiB).

    Linux only (``None`` elsewhere): freed heap memory is handed back to the OS first
    (``malloc_trim``), the kernel's high-water mark is reset (``/proc/self/clear_refs``), and
    the answer is the new high-water mark minus the resident size before. Unlike the tensor
    peak this counts everything the process touched: allocator slack, oneDNN scratch buffers,
    weight re-orders, Python objects.
    """
    import ctypes
    import ctypes.util

    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        libc.malloc_trim(0)
        with open('/proc/self/clear_refs', 'w') as refs:
            refs.write('5')
        before = _status_kib('VmRSS')
    except (OSError, AttributeError):
        return None
    fn()
    return max(_status_kib('VmHWM') - before, 0) / 1024
