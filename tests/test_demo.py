"""Demo plumbing: the summary file, the time-budget hook and the progress bar in evaluation."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from densekit.demo import format_summary, write_summary
from densekit.hooks import TimeBudgetHook
from tests.conftest import SEG_CONFIG, tiny_seg_options


def test_summary_merges_tasks_and_formats(tmp_path: Path) -> None:
    path = tmp_path / 'summary.json'
    write_summary(path, 'seg', {'mIoU': 81.5, 'seconds': 300.0})
    summary = write_summary(path, 'det', {'bbox_mAP_50': 0.8, 'seconds': 500.0})
    assert json.loads(path.read_text()) == summary
    assert summary['seg']['mIoU'] == 81.5 and summary['det']['bbox_mAP_50'] == 0.8
    table = format_summary(summary)
    assert 'mIoU' in table and '81.5' in table and 'bbox_mAP_50' in table


def test_time_budget_stops_training_early_and_still_checkpoints(
        tmp_path: Path, shapes_root: Path, capsys: pytest.CaptureFixture) -> None:
    from densekit.apis import load_config, parse_cfg_options, train

    cfg = load_config(str(SEG_CONFIG), parse_cfg_options(tiny_seg_options(shapes_root, 200, 200)),
                      str(tmp_path))
    cfg.custom_hooks.append(dict(type='densekit.TimeBudgetHook', budget_s=0.01))
    runner = train(cfg)
    assert runner.iter == 1  # the budget ran out during the first iteration
    assert (tmp_path / 'iter_1.pth').is_file()  # save_last still writes the final checkpoint
    # testing in the same process (as the demo does) still writes one picture per image
    from densekit.apis import test
    metrics = test(cfg, str(tmp_path / 'iter_1.pth'), show_dir=str(tmp_path / 'pics'))
    assert 0 <= metrics['mIoU'] <= 100
    assert len(list((tmp_path / 'pics').glob('*.png'))) == 4
    with pytest.raises(ValueError, match='budget_s'):
        TimeBudgetHook(budget_s=0)
