"""TensorBoard logging, ``densekit plot-log`` and ``densekit analyze`` on a real short training run
(the tiny shapes FPN, 6 iterations, validated at 3 and 6)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.cli_capture import run_cli
from tests.conftest import REPO, SEG_CONFIG, tiny_seg_options


@pytest.fixture(scope='module')
def seg_run(tmp_path_factory: pytest.TempPathFactory, shapes_root: Path) -> Path:
    from densekit.apis import load_config, parse_cfg_options, train

    work = tmp_path_factory.mktemp('seg_run')
    options = tiny_seg_options(shapes_root, 6, 6) + ['train_cfg.val_interval=3']
    train(load_config(str(SEG_CONFIG), parse_cfg_options(options), str(work)))
    return work


def _scalars(work: Path) -> list[dict]:
    (path,) = work.glob('*/vis_data/scalars.json')
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_config_logs_to_tensorboard_and_local_files() -> None:
    from mmengine.config import Config

    leaves = sorted(p for p in (REPO / 'configs').glob('*/*.py') if p.parent.name != '_base_')
    assert len(leaves) > 30
    for path in leaves:
        backends = [b['type'] for b in Config.fromfile(str(path)).visualizer['vis_backends']]
        assert 'LocalVisBackend' in backends and 'TensorboardVisBackend' in backends, path


def test_tensorboard_event_file_holds_the_scalars(seg_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = seg_run.glob('*/vis_data/events.out.tfevents.*')
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    records = _scalars(seg_run)
    train = {r['step']: r for r in records if 'iter' in r}
    val = {r['step']: r for r in records if 'iter' not in r}
    assert sorted(train) == [1, 2, 3, 4, 5, 6] and sorted(val) == [3, 6]
    for tag, expected in (('loss', train), ('decode.loss_ce', train), ('lr', train),
                          ('mIoU', val), ('aAcc', val)):
        logged = {e.step: e.value for e in acc.Scalars(tag)}
        assert sorted(logged) == sorted(expected), tag
        for step, record in expected.items():
            assert logged[step] == pytest.approx(record[tag], rel=1e-6), (tag, step)


def test_plot_log_panels_train_and_val(seg_run: Path, tmp_path: Path) -> None:
    from densekit.analysis.curves import read_scalars

    series = read_scalars(seg_run)
    assert [s for s, _ in series['train']['loss']] == [1, 2, 3, 4, 5, 6]
    assert [s for s, _ in series['val']['mIoU']] == [3, 6]
    assert len(series['train']['time']) == 6 and len(series['val']['time']) == 2  # kept apart
    out = tmp_path / 'curves.png'
    assert run_cli(['plot-log', str(seg_run), '--keys', 'loss', 'mIoU', 'time', '--out',
                    str(out)])[0] == 0
    picture = cv2.imread(str(out))
    assert picture.shape[:2] == (300, 1260)  # one row of three panels
    orange, blue = np.array([14, 127, 255]), np.array([180, 119, 31])  # BGR tab:orange/blue
    thirds = np.split(picture, 3, axis=1)
    has = [[bool((np.abs(p.astype(int) - c).sum(-1) < 40).sum() > 50) for c in (blue, orange)]
           for p in thirds]
    assert has == [[True, False], [False, True], [True, True]]  # loss | mIoU | time: both
    default = tmp_path / 'default.png'
    assert run_cli(['plot-log', str(seg_run), '--out', str(default)])[0] == 0
    assert cv2.imread(str(default)).shape[:2] == (600, 1260)  # loss, aAcc, mIoU, mAcc
    code, _, err = run_cli(['plot-log', str(seg_run), '--keys', 'los', '--out', str(default)])
    assert code == 2 and "keys=['los'] are not in the log" in err
    assert run_cli(['plot-log', str(tmp_path), '--out', str(default)])[0] == 2


def test_analyze_seg_confusion_matrix_matches_sklearn(seg_run: Path, shapes_root: Path,
                                                      tmp_path: Path) -> None:
    from sklearn.metrics import confusion_matrix

    from densekit.analysis.evaluate import analyze
    from densekit.apis import load_config, parse_cfg_options
    from densekit.inference import infer

    cfg = load_config(str(SEG_CONFIG), parse_cfg_options(tiny_seg_options(shapes_root)))
    summary = analyze(cfg, str(seg_run / 'iter_6.pth'), tmp_path / 'analysis')
    names = summary['classes']
    # oracle: the predictions of `densekit infer` (another code path) against the label files
    infer(cfg, str(seg_run / 'iter_6.pth'), [str(shapes_root / 'img_dir' / 'val')],
          str(tmp_path / 'pred'))
    preds, gts = [], []
    for gt_path in sorted((shapes_root / 'ann_dir' / 'val').glob('*.png')):
        gts.append(cv2.imread(str(gt_path), cv2.IMREAD_UNCHANGED).ravel())
        pred = cv2.imread(str(tmp_path / 'pred' / f'{gt_path.stem}_label.png'),
                          cv2.IMREAD_UNCHANGED)
        preds.append(pred.ravel())
    gt, pred = np.concatenate(gts), np.concatenate(preds)
    keep = gt != 255
    expected = confusion_matrix(gt[keep], pred[keep], labels=list(range(len(names))))
    assert np.array_equal(np.array(summary['confusion_matrix']), expected)
    assert expected.sum() == keep.sum() > 0
    # mIoU agrees with mmseg's IoUMetric from the validation after iteration 6
    val = [r for r in _scalars(seg_run) if 'iter' not in r and r['step'] == 6][0]
    assert summary['mIoU'] == pytest.approx(val['mIoU'], abs=0.01)
    assert summary['aAcc'] == pytest.approx(val['aAcc'], abs=0.01)
    rows = (tmp_path / 'analysis' / 'per_class.csv').read_text().splitlines()
    assert rows[0] == 'class,IoU,Acc,gt_pixels,pred_pixels' and len(rows) == len(names) + 1
    picture = cv2.imread(str(tmp_path / 'analysis' / 'confusion_matrix.png'))
    assert picture is not None and min(picture.shape[:2]) >= 400


def test_analyze_loads_checkpoints_strictly(seg_run: Path, shapes_root: Path,
                                            tmp_path: Path) -> None:
    from densekit.analysis.evaluate import analyze
    from densekit.apis import parse_cfg_options
    from densekit.checkpoint import CheckpointMismatchError

    options = parse_cfg_options([*tiny_seg_options(shapes_root), 'model.decode_head.channels=16'])
    with pytest.raises(CheckpointMismatchError):
        analyze(str(SEG_CONFIG), str(seg_run / 'iter_6.pth'), tmp_path, cfg_options=options)
    with pytest.raises(ValueError, match="split='tset'"):
        analyze(str(SEG_CONFIG), str(seg_run / 'iter_6.pth'), tmp_path, split='tset')


def test_confusion_matrix_refuses_bad_values() -> None:
    from densekit.analysis.evaluate import confusion_matrix

    gt = np.array([0, 1, 255, 2])
    assert confusion_matrix(np.array([0, 1, 2, 2]), gt, 3).trace() == 3
    with pytest.raises(ValueError, match=r'gt holds values \[7\] outside \[0, 3\)'):
        confusion_matrix(np.zeros(4), np.array([0, 1, 7, 2]), 3)
    with pytest.raises(ValueError, match='pred has 3 pixels and gt 4'):
        confusion_matrix(np.zeros(3), gt, 3)
