"""Checkpoints: safe loading (weights_only + allow-list), atomic writes, kill-and-resume."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import densekit  # noqa: F401
from densekit.checkpoint import UnsafeCheckpointError, safe_load
from densekit.fileio import AtomicLocalBackend, atomic_open, atomic_write_bytes
from tests.conftest import REPO, SEG_CONFIG, tiny_seg_options


class _RunsCodeOnLoad:
    """Pickles as a call to os.system: loading it with plain pickle would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': _RunsCodeOnLoad(marker)}, evil)
    with pytest.raises(UnsafeCheckpointError, match=r'(posix|os)\.system'):
        safe_load(str(evil))
    # mmengine's own loader (used by Runner.resume / load_from) goes through the same check
    from mmengine.runner import load_checkpoint
    with pytest.raises(UnsafeCheckpointError, match='Nothing from the file was executed'):
        load_checkpoint(torch.nn.Linear(2, 2), str(evil))
    assert not marker.exists()


def test_legacy_format_malicious_file_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil_legacy.pth'
    torch.save({'x': _RunsCodeOnLoad(marker)}, evil, _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeCheckpointError, match='system'):
        safe_load(str(evil))
    assert not marker.exists()


def test_missing_checkpoint_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        safe_load(str(tmp_path / 'nope.pth'))


def test_atomic_write_keeps_old_file_when_writer_dies(tmp_path: Path) -> None:
    target = tmp_path / 'ckpt.pth'
    atomic_write_bytes(b'old complete checkpoint', target)
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(target, 'wb') as handle:
            handle.write(b'half of a new chec')
            raise KeyboardInterrupt  # the process is interrupted mid-save
    assert target.read_bytes() == b'old complete checkpoint'
    assert [p.name for p in tmp_path.iterdir()] == ['ckpt.pth']  # no temporary left behind
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_mmengine_local_backend_is_atomic() -> None:
    from mmengine.fileio import get_file_backend

    assert isinstance(get_file_backend('work_dirs/x/iter_1.pth'), AtomicLocalBackend)
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'"):
        with atomic_open('x', 'ab'):
            pass


def _train_cmd(work_dir: Path, data_root: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / 'tools' / 'train.py'), str(SEG_CONFIG),
            '--work-dir', str(work_dir), '--seed', '0', '--deterministic', *extra,
            '--cfg-options', *tiny_seg_options(data_root, max_iters=40, interval=4)]


def _final_state(work_dir: Path) -> dict:
    return safe_load(str(work_dir / 'iter_40.pth'))['state_dict']


@pytest.mark.slow  # about a minute: two training runs and a killed process
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path, shapes_root: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    straight = tmp_path / 'straight'
    subprocess.run(_train_cmd(straight, shapes_root), check=True, cwd=REPO, env=env,
                   capture_output=True, timeout=600)

    broken = tmp_path / 'broken'
    proc = subprocess.Popen(_train_cmd(broken, shapes_root), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (broken / 'iter_4.pth').exists():
        assert proc.poll() is None, 'training exited before its first checkpoint'
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, 'the run finished before it could be killed'
    assert not (broken / 'iter_40.pth').exists()

    resumed = subprocess.run(_train_cmd(broken, shapes_root, '--resume'), cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed' in (resumed.stdout + resumed.stderr).lower()
    want, got = _final_state(straight), _final_state(broken)
    assert want.keys() == got.keys()
    worst = max((want[k].float() - got[k].float()).abs().max().item() for k in want)
    assert worst <= 1e-6


class _GetattrGadget:
    """Pickles as getattr(HistoryBuffer, '__init__'): an attribute lookup mmengine never writes."""

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        return (getattr, (HistoryBuffer, '__init__'))


def test_getattr_is_limited_to_history_buffer_statistics(tmp_path: Path) -> None:
    from mmengine.logging.history_buffer import HistoryBuffer

    buf = HistoryBuffer()
    buf.update(1.5)
    good = tmp_path / 'good.pth'
    torch.save({'buffer': buf, 'x': np.float64(2.0), 'arr': np.arange(3)}, good)
    loaded = safe_load(str(good))
    assert loaded['buffer'].mean() == 1.5 and loaded['x'] == 2.0
    bad = tmp_path / 'bad.pth'
    torch.save({'gadget': _GetattrGadget()}, bad)
    with pytest.raises(UnsafeCheckpointError, match="__init__"):
        safe_load(str(bad))
