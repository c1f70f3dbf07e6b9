"""The ``backbones`` benchmark suite runs in quick mode and reports sane numbers."""
from benchmarks.backbones import BACKBONES, backbones_suite
from benchmarks.harness import load_suites


def test_backbones_suite_quick_rows_are_sane():
    assert 'backbones' in load_suites()
    rows = backbones_suite(quick=True)
    per_backbone = [r for r in rows if r.peer_s is None]
    claims = [r for r in rows if r.peer_s is not None]
    labels = {r.case.split(' ')[0] for r in per_backbone}
    assert labels == {label for label, _, _ in BACKBONES}  # every backbone present
    for row in per_backbone:
        assert row.densekit_s > 0 and row.densekit_mem_mb > 0
        for key in ('params M', 'GFLOPs', 'img/s fwd', 'img/s fwd+bwd', 'train MiB'):
            assert float(row.extra[key]) > 0, (row.case, key)
        # a training step keeps activations for backward: more memory than inference
        assert float(row.extra['train MiB']) > row.densekit_mem_mb
        # throughputs are timings: they are reported by the benchmark, not compared here
    assert any('deploy' in r.case for r in per_backbone)
    assert len(claims) >= 3
    for row in claims:
        assert row.densekit_s > 0 and row.peer_s > 0 and 'paper' in row.extra['claim']
