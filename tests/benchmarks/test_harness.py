"""The benchmark harness measures the device the work ran on (benchmarks/harness.py and
densekit/analysis/memory.py)."""
from __future__ import annotations

import pytest
import torch

from benchmarks import harness as benchmark
from benchmarks.harness import (
    format_table,
    measure_pair,
    peak_memory_mb,
    peak_rss_mb,
    resolve_device,
    time_pair,
)

MIB = 2 ** 20


def _allocate_64_mib() -> torch.Tensor:
    x = torch.ones(64 * MIB // 4)  # 64 MiB, then a second 64 MiB alive at the same time
    return (x * 2).sum()


def test_resolve_device_from_modules_tensors_and_names() -> None:
    cpu = torch.device('cpu')
    assert resolve_device() == cpu
    assert resolve_device(torch.nn.Linear(2, 2), [torch.zeros(1)], {'x': None}) == cpu
    assert resolve_device(torch.nn.ReLU()) == cpu  # no parameters: nothing says otherwise
    # the accelerator wins over CPU inputs still to be moved there
    assert resolve_device(torch.zeros(1), ('cuda:1',)) == torch.device('cuda', 1)
    assert resolve_device(torch.device('meta')) == torch.device('meta')
    with pytest.raises(ValueError, match='several accelerator devices'):
        resolve_device('cuda:0', 'cuda:1')
    with pytest.raises(ValueError, match="device must name a torch device.*'gpu0'"):
        resolve_device('gpu0')
    with pytest.raises(TypeError, match='got int'):
        resolve_device(3)


def test_time_pair_synchronises_only_the_device_that_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(torch.cuda, 'synchronize', lambda device=None: calls.append(device))
    time_pair(lambda: None, lambda: None, repeats=2, warmup=0, device='cpu')
    assert calls == []  # CPU work: wall clock, no CUDA call
    time_pair(lambda: None, None, repeats=3, warmup=0, device='cuda:1')
    # before and after each of the 3 timed runs, on that device
    assert calls == [torch.device('cuda', 1)] * 6


def test_cpu_memory_is_the_tensor_peak_and_rss_rise() -> None:
    assert peak_memory_mb(_allocate_64_mib, 'cpu') == pytest.approx(128, abs=1)
    rss = peak_rss_mb(_allocate_64_mib)
    assert rss is not None and 100 < rss < 200  # pages really touched, freed memory trimmed
    with pytest.raises(ValueError, match='cpu or cuda devices, got meta'):
        peak_memory_mb(_allocate_64_mib, 'meta')


def test_measure_pair_on_the_cpu_reports_its_device_in_the_table() -> None:
    small = torch.zeros(16 * MIB // 4)
    result = measure_pair(_allocate_64_mib, lambda: small * 2, device=resolve_device(small),
                          repeats=3)
    assert result.device == torch.device('cpu') and result.memory_kind == 'cpu tensor peak'
    assert result.seconds[0] > 0 and result.seconds[1] > 0
    assert result.memory_mb[0] == pytest.approx(128, abs=1)
    assert result.memory_mb[1] == pytest.approx(16, abs=1)
    assert result.rss_mb[0] is not None and result.rss_mb[0] > 100
    assert result.cpu_seconds[0] > 0 and result.cpu_seconds[1] > 0
    table = format_table([result.row('alloc', {'note': 'x'})])
    assert '| alloc | cpu |' in table and 'peak RSS MiB dk/peer' in table
    assert 'CPU ratio' in table
    assert benchmark.MEMORY_LEGEND['cpu'] in table


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_measure_pair_on_cuda_times_and_measures_the_gpu() -> None:
    x = torch.ones(64 * MIB // 4, device='cuda')
    result = measure_pair(lambda: x * 2, lambda: (x * 2) * 3, device=resolve_device(x),
                          repeats=3)
    assert result.device.type == 'cuda' and result.memory_kind == 'cuda max_memory_allocated'
    assert result.memory_mb[0] == pytest.approx(64, abs=2)
    assert result.memory_mb[1] == pytest.approx(128, abs=2)
    assert result.rss_mb == (None, None)
    # device unknown: decided by where fn allocated
    assert peak_memory_mb(lambda: x * 2) == pytest.approx(64, abs=2)


def test_bench_command_finds_the_checkout_benchmarks_or_says_where_they_are(
        tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import densekit
    from densekit.cli import _benchmark_harness, main

    load_suites, run_suites = _benchmark_harness()
    assert load_suites is benchmark.load_suites and run_suites is benchmark.run_suites
    assert main(['bench', 'no-such-suite']) == 2
    assert "unknown benchmark suite 'no-such-suite'" in capsys.readouterr().err
    # an installed copy: no benchmarks/ next to the package, none in the working directory
    monkeypatch.setattr(densekit, '__file__', str(tmp_path / 'site' / 'densekit' / '__init__.py'))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match='source checkout'):
        _benchmark_harness()
    assert main(['bench', 'necks']) == 2
    assert 'benchmarks/ folder of a densekit source checkout' in capsys.readouterr().err
