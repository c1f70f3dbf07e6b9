"""tools/*.py and the densekit command end to end on the tiny shapes config."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import DET_CONFIG, REPO, SEG_CONFIG, run_tool, tiny_seg_options


@pytest.fixture(scope='module')
def trained(tmp_path_factory: pytest.TempPathFactory, shapes_root: Path) -> Path:
    work = tmp_path_factory.mktemp('train')
    res = run_tool(['tools/train.py', str(SEG_CONFIG), '--work-dir', str(work),
                    '--cfg-options', *tiny_seg_options(shapes_root, max_iters=4, interval=4)])
    assert res.returncode == 0, res.stderr[-3000:]
    assert (work / 'iter_4.pth').is_file() and (work / 'last_checkpoint').is_file()
    return work


def test_help_is_useful() -> None:
    res = run_tool(['-m', 'densekit.cli', '--help'])
    assert res.returncode == 0
    for word in ('train', 'test', 'infer', 'bench', 'demo', 'examples'):
        assert word in res.stdout
    res = run_tool(['tools/train.py', '--help'])
    assert res.returncode == 0
    for flag in ('--work-dir', '--resume', '--amp', '--cfg-options', '--launcher'):
        assert flag in res.stdout
    res = run_tool(['tools/test.py', '--help'])
    for flag in ('checkpoint', '--out', '--show-dir', '--work-dir'):
        assert flag in res.stdout


def test_test_tool_writes_metrics_and_pictures(trained: Path, shapes_root: Path,
                                               tmp_path: Path) -> None:
    out, pics = tmp_path / 'metrics.json', tmp_path / 'pics'
    res = run_tool(['tools/test.py', str(SEG_CONFIG), str(trained / 'iter_4.pth'),
                    '--work-dir', str(tmp_path / 'w'), '--out', str(out), '--show-dir', str(pics),
                    '--cfg-options', *tiny_seg_options(shapes_root)])
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads(out.read_text())
    assert 0 <= metrics['mIoU'] <= 100 and 0 <= metrics['aAcc'] <= 100
    assert sorted(p.name for p in pics.glob('*.png')) == [f'test_{i:05d}.png' for i in range(4)]


def test_infer_skips_corrupt_files_and_never_overwrites(trained: Path, shapes_root: Path,
                                                        tmp_path: Path) -> None:
    inputs = tmp_path / 'in'
    inputs.mkdir()
    for i in range(2):
        (inputs / f'img{i}.png').write_bytes((shapes_root / 'img_dir/val' / f'{i:05d}.png')
                                             .read_bytes())
    (inputs / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n this is not an image')
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    out = tmp_path / 'out'
    res = run_tool(['tools/infer.py', str(SEG_CONFIG), str(trained / 'iter_4.pth'), str(inputs),
                    str(tmp_path / 'missing_*.png'), '--out', str(out)])
    assert res.returncode == 1, res.stderr[-3000:]  # one input failed, one pattern matched nothing
    assert 'broken.png' in res.stdout and '2 of 3 inputs predicted' in res.stdout
    assert res.stdout.strip().splitlines()[-1] == (
        'FAILED: 1 of 3 inputs failed and 1 input pattern(s) matched nothing (listed above); '
        'exit status 1')
    label = cv2.imread(str(out / 'img0_label.png'), cv2.IMREAD_UNCHANGED)
    assert label.shape == (64, 64) and label.max() < 7
    assert (out / 'img1_overlay.png').is_file() and not (out / 'broken_label.png').exists()
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before

    # same prediction as the Runner's test loop would make
    from densekit.apis import load_config
    from densekit.inference import build_model
    cfg = load_config(str(SEG_CONFIG))
    model = build_model(cfg, str(trained / 'iter_4.pth'), 'cpu')
    import torch
    from mmengine.dataset import Compose, pseudo_collate

    pipe = Compose([dict(type='LoadImageFromFile'), dict(type='mmseg.PackSegInputs')])
    with torch.no_grad():
        ref = model.test_step(pseudo_collate([pipe(dict(img_path=str(inputs / 'img0.png')))]))
    assert np.array_equal(ref[0].pred_sem_seg.data[0].numpy(), label)


def test_resume_flag_and_amp_flag_reach_the_config(tmp_path: Path) -> None:
    from densekit.apis import _enable_amp, load_config

    cfg = load_config(str(SEG_CONFIG), {'train_cfg.max_iters': 3}, str(tmp_path))
    assert cfg.work_dir == str(tmp_path) and cfg.train_cfg.max_iters == 3
    _enable_amp(cfg, 'cuda')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'  # the CPU's: tests/test_amp.py
    with pytest.raises(FileNotFoundError, match='no_such_config'):
        load_config('no_such_config.py')


def test_dist_train_two_cpu_processes(tmp_path: Path, shapes_root: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable,
               PORT=str(29500 + os.getpid() % 1000))
    res = subprocess.run(['bash', 'tools/dist_train.sh', str(SEG_CONFIG), '2', '--work-dir',
                          str(tmp_path), '--cfg-options', *tiny_seg_options(shapes_root, 4, 4)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    log = next(tmp_path.glob('*/*.log')).read_text()
    # mmengine logs the world size as 'GPU number' whatever the device
    assert 'Distributed training: True' in log and 'GPU number: 2' in log and 'gloo' in log
    assert 'mIoU:' in log  # rank 0 evaluated at the end of training
    from mmengine.runner import load_checkpoint

    from densekit.apis import load_config
    from densekit.inference import build_model
    model = build_model(load_config(str(SEG_CONFIG)), str(tmp_path / 'iter_4.pth'), 'cpu')
    assert sum(p.numel() for p in model.parameters()) > 0
    load_checkpoint(model, str(tmp_path / 'iter_4.pth'))


@pytest.mark.slow  # DDP segmentation stays in the default run; detection adds 20 s
def test_dist_train_two_cpu_processes_detection(tmp_path: Path) -> None:
    """A detector under DDP (2 gloo processes): trains, rank 0 evaluates with CocoMetric."""
    from densekit.tasks.detection import generate_detection_dataset

    coco = generate_detection_dataset(tmp_path / 'coco', num_train=8, num_val=4, size=96,
                                      seed=5)
    ann = coco / 'annotations' / 'instances_val.json'
    work = tmp_path / 'work'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable,
               PORT=str(30500 + os.getpid() % 1000))
    options = [*(f'{loader}.dataset.data_root={coco}/' for loader in
                 ('train_dataloader', 'val_dataloader', 'test_dataloader')),
               f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}',
               'train_dataloader.batch_size=2', 'val_dataloader.batch_size=2',
               'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
               'default_hooks.checkpoint.interval=4', 'default_hooks.logger.interval=1',
               # 4 iterations leave every score near the focal-loss prior (0.01): keep them all
               # so CocoMetric has detections to score
               'model.test_cfg.score_thr=0.0']
    res = subprocess.run(['bash', 'tools/dist_train.sh', str(DET_CONFIG), '2', '--work-dir',
                          str(work), '--cfg-options', *options],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    log = next(work.glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    assert 'coco/bbox_mAP_50:' in log  # rank 0 evaluated the 4 validation images
    assert (work / 'iter_4.pth').is_file()
