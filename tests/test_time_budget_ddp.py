"""Time budgets under DDP: every rank stops at the same iteration with the same learning rates.

The test delays rank 1's start by a few seconds (tests/ddp_clock_probe.py), so each rank's own
clock would disagree with rank 0's for the whole run: rank 0 would stop first and leave rank 1
waiting in the next all-reduce, and the two would train with different learning rates.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, SEG_CONFIG, tiny_seg_options

BUDGET_S = 8.0
SKEW_S = 2.5


def _run_killing_group(args: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    """Run ``args`` in its own process group; on timeout kill the whole group (torchrun's
    workers too) and fail with the output so far."""
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f'distributed run did not finish in {timeout:.0f} s (a rank is stuck in a '
                    f'collective?)\n{err[-3000:]}')
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.slow  # two DDP processes training (25 s)
def test_time_budget_ranks_stop_together_with_identical_weights(tmp_path: Path,
                                                                shapes_root: Path) -> None:
    config = tmp_path / 'budget_ddp.py'
    config.write_text(
        f"_base_ = [{str(SEG_CONFIG)!r}]\n"
        "custom_imports = dict(imports=['tests.ddp_clock_probe'], allow_failed_imports=False)\n"
        "param_scheduler = []\n"
        "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9, "
        "weight_decay=0.0, _delete_=True))\n"
        "custom_hooks = [\n"
        f"    dict(type='ClockSkewProbeHook', skew_s={SKEW_S}, skew_rank=1),\n"
        f"    dict(type='densekit.TimeCosineLRHook', budget_s={BUDGET_S}, warmup_iters=0,\n"
        "         validate_at_end=False),\n"
        f"    dict(type='densekit.TimeBudgetHook', budget_s={BUDGET_S}),\n"
        "]\n")
    work = tmp_path / 'work'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable, PYTHONUNBUFFERED='1',
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]),
               PORT=str(31500 + os.getpid() % 1000))
    options = tiny_seg_options(shapes_root, max_iters=100000, interval=100000)
    res = _run_killing_group(['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir',
                              str(work), '--cfg-options', *options], env, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    ranks = [torch.load(work / f'probe_rank{r}.pth', weights_only=True) for r in (0, 1)]
    # the budget, not max_iters, stopped the run (a busy machine may fit only a few iterations)
    assert 2 <= ranks[0]['iter'] < 100000
    assert ranks[0]['iter'] == ranks[1]['iter'] == len(ranks[0]['lrs'])
    assert ranks[0]['lrs'] == ranks[1]['lrs']
    # the schedule decayed over rank 0's budget: no warm-up, so the first rate is the peak and
    # the last (set after more than half the budget) is well below it
    assert ranks[0]['lrs'][-1] < 0.5 * max(ranks[0]['lrs'])
    assert ranks[0]['params'].keys() == ranks[1]['params'].keys()
    for name, value in ranks[0]['params'].items():
        assert torch.equal(value, ranks[1]['params'][name]), name
    log = next(work.glob('*/*.log')).read_text()
    assert 'time budget' in log and 'stopping training' in log


def test_rank0_clock_single_process_and_bad_arguments() -> None:
    import time

    from densekit.clock import Rank0Clock
    from densekit.hooks import TimeBudgetHook
    from densekit.tasks.restoration.hooks import TimeCosineLRHook

    clock = Rank0Clock(sync_every=3)
    with pytest.raises(RuntimeError, match='before start'):
        clock.elapsed()
    clock.start()
    first = clock.elapsed()
    time.sleep(0.02)
    # one process: the local clock on every call, whatever sync_every says
    assert clock.elapsed() >= first + 0.02
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match='sync_every'):
            Rank0Clock(sync_every=bad)
        with pytest.raises(ValueError, match='check_every'):
            TimeBudgetHook(budget_s=5, check_every=bad)
        with pytest.raises(ValueError, match='sync_every'):
            TimeCosineLRHook(budget_s=5, sync_every=bad)
