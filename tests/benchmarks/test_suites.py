"""The necks-bf16 and models benchmark suites build and run every row at a tiny size."""
from __future__ import annotations

import math
from typing import List

import pytest
import torch
from torch import Tensor, nn

from benchmarks.harness import Row, format_table, load_suites
from tests.helpers.numerics import torch_threads


def _ok_rows(rows: List[Row]) -> List[Row]:
    return [r for r in rows if r.extra.get('status') == 'ok']


def test_necks_bf16_suite_quick_rows_run() -> None:
    with torch_threads(1):  # tiny shapes: OpenMP hand-offs on a busy machine cost more
        rows = load_suites()['necks-bf16'](repeats=1, quick=True)
    names = [r.case for r in rows]
    for neck in ('FPN', 'JPU', 'ASPPHead'):
        for mode in ('bf16 inference', 'bf16 train fwd+bwd'):
            assert sum(neck in n and mode in n for n in names) == 1, (neck, mode, names)
    assert _ok_rows(rows) == rows, format_table(rows)
    for row in rows:
        assert row.device == 'cpu' and row.densekit_s > 0 and row.peer_s > 0
        assert row.densekit_mem_mb > 0 and row.peer_mem_mb > 0
        if 'inference' in row.case:
            ours, peer = map(float, row.extra['bf16 vs fp32 rel err dk/peer'].split('/'))
            # bf16 keeps 8 mantissa bits (2^-8 = 3.9e-3 relative rounding per value)
            assert 0 < peer < 3e-2 and ours <= 2 * peer + 1e-3, row


class _RefusesAutocast(nn.Module):
    def forward(self, inputs: List[Tensor]) -> Tensor:
        if torch.is_autocast_enabled('cpu'):
            raise RuntimeError('could not create a primitive descriptor')
        return inputs[0] * 2


def test_necks_bf16_suite_reports_a_failing_case_and_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import necks_bf16 as bf16_bench
    from benchmarks.necks import _Case

    x = [torch.randn(1, 4, 8, 8)]
    cases = [_Case('Broken (peer ok)', _RefusesAutocast(), nn.Identity(), x),
             _Case('Fine', nn.Identity(), nn.Identity(), x)]
    monkeypatch.setattr(bf16_bench, '_cases', lambda quick: cases)
    rows = bf16_bench.necks_bf16_suite(repeats=1, quick=True)
    broken = [r for r in rows if r.case.startswith('Broken')]
    assert len(broken) == 2 and all(math.isnan(r.densekit_s) for r in broken)
    assert all(r.extra['status'].startswith('FAILED (densekit): RuntimeError: could not')
               for r in broken)
    assert [r.extra['status'] for r in rows if r.case.startswith('Fine')] == ['ok', 'ok']
    assert 'FAILED (densekit)' in format_table(rows)


def _check_model_rows(rows: List[Row], count: int) -> None:
    assert len(rows) == count, format_table(rows)
    for row in rows:
        assert row.device == 'cpu'
        if 'DeepLabV3' in row.case and 'b1 train' in row.case:
            # the stock config trains 2 images per GPU: BatchNorm after the image pool cannot
            # train on one (mmseg's head and densekit's alike)
            assert 'Expected more than 1 value per channel' in row.extra['status']
            continue
        assert row.extra['status'] == 'ok', row
        assert row.densekit_s > 0 and row.peer_s > 0 and row.densekit_mem_mb > 0
        shares = [float(v.rstrip('%')) for v in row.extra['backbone share dk/peer'].split('/')]
        assert all(0 < s <= 100 for s in shares), row
        if 'DeepLabV3' in row.case:  # no neck
            assert row.extra['neck s dk/peer'] == '-', row
        else:  # the neck's time is part of the rest of the step
            necks = [float(v) for v in row.extra['neck s dk/peer'].split('/')]
            rests = [float(v) for v in row.extra['rest s dk/peer'].split('/')]
            assert all(0 < n <= r for n, r in zip(necks, rests)), row


def test_models_suite_quick_semantic_fpn_rows_run() -> None:
    """One model's rows in the default suite (every row: the slow test below)."""
    from benchmarks.models import models_suite

    with torch_threads(1):
        rows = models_suite(repeats=1, quick=True, only='Semantic FPN', batches=(2,))
    _check_model_rows(rows, 2)
    assert {r.case.rsplit(' ', 1)[-1] for r in rows} == {'inference', 'step'}


@pytest.mark.slow
def test_models_suite_quick_every_row() -> None:
    from benchmarks.models import models_suite

    with torch_threads(1):
        rows = models_suite(repeats=1, quick=True)
    _check_model_rows(rows, 3 * 2 * 2)


def test_models_switch_only_the_named_types() -> None:
    from benchmarks.models import MODEL_CASES, build_pair

    for case in MODEL_CASES:
        ours, peer = build_pair(case, quick=True)
        for key, new_type in case.switch.items():
            assert type(getattr(ours, key)).__module__.startswith('densekit'), key
            assert not type(getattr(peer, key)).__module__.startswith('densekit'), key
            assert type(getattr(ours, key)).__name__ == new_type.split('.')[1]
        # everything else is the stock class with the stock weights
        assert type(ours.backbone) is type(peer.backbone)
        theirs = peer.state_dict()
        for name, value in ours.backbone.state_dict().items():
            assert torch.equal(value, theirs[f'backbone.{name}'])


def test_deploy_suite_times_both_runtimes_and_says_where_time_goes(monkeypatch) -> None:
    from benchmarks import deploy as deploy_bench

    monkeypatch.setattr(deploy_bench, 'TARGET_SPEEDUP', float('inf'))  # always profile
    rows = deploy_bench.bench_deploy(repeats=1, only='fsrcnn_x2d56')
    assert [row.case for row in rows] == ['fsrcnn_x2d56s12m4_1xb4-4min_photos (1t)',
                                          'fsrcnn_x2d56s12m4_1xb4-4min_photos (2t)']
    for row in rows:
        assert row.densekit_s > 0 and row.peer_s > 0
        assert row.extra['task'] == 'sr' and row.extra['speedup'].endswith('x')
        shares = row.extra['where ORT time goes']
        assert 'Conv' in shares and shares.count('%') >= 1
    assert [r.extra['not exported'] for r in deploy_bench.bench_deploy(
        repeats=1, only='fpn_piip-2branch')][0].startswith('ExportRefused: ')


def test_large_image_suite_quick_row() -> None:
    from benchmarks.deploy import bench_large_image

    (row,) = bench_large_image(quick=True)
    assert row.case == 'Semantic FPN 1024x1024, 7 classes'
    assert row.densekit_s > 0 and row.peer_s > 0
    assert row.extra['whole-image scores MiB'] == '28'  # 7 x 1024^2 float32
    assert row.densekit_mem_mb is None or row.densekit_mem_mb > 0
