"""densekit.threads: idle cores from /proc/stat, and thread settings that are always restored."""
import os
from types import SimpleNamespace

import pytest
import torch

from densekit import threads


def _stat(tmp_path, name, user, idle, iowait, guest=0):
    # user nice system idle iowait irq softirq steal guest guest_nice
    path = tmp_path / name
    path.write_text(f'cpu  {user} 0 50 {idle} {iowait} 0 0 0 {guest} 0\ncpu0 1 2 3 4\n')
    return str(path)


def test_cpu_times_sums_eight_fields_and_counts_iowait_as_idle(tmp_path):
    assert threads.cpu_times(_stat(tmp_path, 'a', 200, 700, 30, guest=999)) == (730, 980)
    assert threads.cpu_times(str(tmp_path / 'missing')) is None
    (tmp_path / 'bad').write_text('intr 1 2 3\n')
    assert threads.cpu_times(str(tmp_path / 'bad')) is None


@pytest.mark.parametrize('idle_ticks, busy_ticks, expected', [
    (600, 200, 6),    # 75 % idle of 8 cores
    (0, 800, 1),      # fully busy: still one thread
    (800, 0, 8),      # fully idle
    (500, 300, 5),    # 62.5 % -> 5.0 cores, rounded to nearest
])
def test_idle_cpu_threads_from_two_samples(monkeypatch, idle_ticks, busy_ticks, expected):
    samples = iter([(100, 1000), (100 + idle_ticks, 1000 + idle_ticks + busy_ticks)])
    monkeypatch.setattr(threads, 'cpu_times', lambda path: next(samples))
    monkeypatch.setattr(threads, '_usable_cores', lambda: 8)
    monkeypatch.setattr(os, 'cpu_count', lambda: 8)
    assert threads.idle_cpu_threads(0.01) == expected


def test_idle_cpu_threads_is_capped_by_affinity_and_falls_back_to_cpu_count(monkeypatch):
    samples = iter([(0, 0), (800, 800)])
    monkeypatch.setattr(threads, 'cpu_times', lambda path: next(samples))
    monkeypatch.setattr(threads, '_usable_cores', lambda: 3)
    monkeypatch.setattr(os, 'cpu_count', lambda: 8)
    assert threads.idle_cpu_threads(0.01) == 3
    monkeypatch.setattr(threads, 'cpu_times', lambda path: None)
    monkeypatch.setattr(threads, '_usable_cores', lambda: 16)
    assert threads.idle_cpu_threads(0.01) == 8


def test_idle_cpu_threads_on_this_machine_is_in_range():
    count = threads.idle_cpu_threads(0.05)
    assert 1 <= count <= (os.cpu_count() or 1)
    with pytest.raises(ValueError, match='interval'):
        threads.idle_cpu_threads(0)


def test_torch_threads_sets_and_restores_also_on_error():
    before = torch.get_num_threads()
    with threads.torch_threads(1) as inside:
        assert inside == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match='boom'):
        with threads.torch_threads(1):
            raise RuntimeError('boom')
    assert torch.get_num_threads() == before
    with threads.torch_threads(None) as inside:
        assert inside == before
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match='count must be a positive int'):
            with threads.torch_threads(bad):
                pass


@pytest.mark.skipif(torch.cuda.is_available(), reason='the hook leaves threads alone on GPU')
def test_cpu_threads_hook_restores_after_run():
    from densekit.tasks.restoration.hooks import CpuThreadsHook

    before = torch.get_num_threads()
    hook = CpuThreadsHook(threads=1)
    hook.before_train(SimpleNamespace())
    assert torch.get_num_threads() == 1
    hook.after_run(SimpleNamespace())
    assert torch.get_num_threads() == before
    hook.after_run(SimpleNamespace())  # a second call changes nothing
    assert torch.get_num_threads() == before
