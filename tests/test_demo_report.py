"""The demo report ``work_dirs/demo/index.html``: built from the real outputs of short stage runs
(each stage's own body, 2 training iterations on tiny built-in data), opened in headless Chromium
(Debian's ``chromium``): every image must load and no stage may be missing."""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import REPO, tiny_seg_options

CONFIGS = REPO / 'configs'
STAGES = ('seg', 'sr', 'derain', 'det', 'medical')


def _browser() -> str:
    for name in ('chromium', 'chromium-browser', 'google-chrome'):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip('no headless Chromium: install Debian\'s `chromium` package (apt-get install -y '
                'chromium; .ci/run does it when apt is available)')


def _chromium(page: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [_browser(), '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
           '--hide-scrollbars', '--virtual-time-budget=10000', *args, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _seg_stage(stage: Path, data: Path) -> dict:
    from densekit.apis import parse_cfg_options
    from densekit.demo import train_and_evaluate
    from densekit.tasks.segmentation import generate_shapes_dataset

    root = generate_shapes_dataset(data / 'shapes', num_train=4, num_val=2, size=64, seed=3)
    options = parse_cfg_options(tiny_seg_options(root, 2, 2))
    runner, metrics, _ = train_and_evaluate(
        'segmentation/fpn_r18-tiny_1xb8-2000i_shapes-128x128.py', stage, 600, options)
    return {'mIoU': float(metrics['mIoU']), 'aAcc': float(metrics['aAcc']),
            'train_iters': float(runner.iter)}


def _det_stage(stage: Path, data: Path) -> dict:
    from densekit.demo import _data_root_options, train_and_evaluate
    from densekit.tasks.detection import generate_detection_dataset

    coco = generate_detection_dataset(data / 'coco', num_train=2, num_val=2)
    ann = str(coco / 'annotations' / 'instances_val.json')
    runner, metrics, _ = train_and_evaluate(
        'detection/retinanet_r18-half_fpn_1xb8-2000i_shapes-160x160.py', stage, 600,
        {**_data_root_options(coco), 'val_evaluator.ann_file': ann,
         'test_evaluator.ann_file': ann, 'train_dataloader.batch_size': 2,
         'train_cfg.max_iters': 2, 'model.test_cfg.score_thr': 0.0})
    return {'bbox_mAP_50': float(metrics['coco/bbox_mAP_50']),
            'bbox_mAP': float(metrics['coco/bbox_mAP']), 'train_iters': float(runner.iter)}


def _restoration_stage(stage: Path, data: Path, task: str) -> dict:
    from mmengine.config import Config

    from densekit import apis
    from densekit.tasks.restoration.demo import DERAIN_CONFIG, SR_CONFIG, evaluate_photos
    from densekit.tasks.restoration.photos import generate_restoration_photos

    root = generate_restoration_photos(data / 'photos', train=('page',),
                                       val=('microaneurysms', 'camera'))
    config = SR_CONFIG if task == 'sr' else DERAIN_CONFIG
    cfg = Config.fromfile(str(CONFIGS / 'restoration' / config))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(root)
    cfg.custom_hooks = [h for h in cfg.custom_hooks if 'budget_s' not in h]
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 2
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.train_dataloader.batch_size = 2
    cfg.work_dir = str(stage)
    cfg.dump(str(stage / 'config.py'))
    runner = apis.train(cfg)
    data_list = runner.val_dataloader.dataset.data_list
    scores = evaluate_photos(runner.model, data_list, 2 if task == 'sr' else 1,
                             stage / 'pictures')
    if task == 'sr':
        return {'psnr_y': scores['out'], 'psnr_y_bicubic': scores['base'],
                'train_iters': float(runner.iter)}
    return {'psnr': scores['out'], 'psnr_input': scores['base'],
            'train_iters': float(runner.iter)}


def _medical_stage(stage: Path, data: Path) -> dict:
    from mmengine.config import Config

    from densekit import apis
    from densekit.inference import infer
    from densekit.tasks.medical3d.phantoms import generate_phantoms

    root = generate_phantoms(data / 'phantoms', num_train=2, num_val=1, num_test=1,
                             fov_mm=(40.0, 56.0, 56.0))
    cfg = Config.fromfile(
        str(CONFIGS / 'medical3d' / 'resunet-tiny_1xb2-600i_phantoms-48x48x48.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(root)
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 2
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(stage)
    cfg.dump(str(stage / 'config.py'))
    runner = apis.train(cfg)
    checkpoint = str(stage / f'iter_{runner.iter}.pth')
    metrics = apis.test(cfg, checkpoint)
    (test_image,) = sorted((root / 'imagesTs').glob('*_0000.nii.gz'))
    infer(cfg, checkpoint, [str(test_image)], str(stage / 'predictions'))
    return {'dice': float(metrics['dice']), 'hd95': float(metrics['hd95']),
            'train_iters': float(runner.iter)}


RUNNERS = {'seg': _seg_stage, 'det': _det_stage, 'medical': _medical_stage,
           'sr': lambda s, d: _restoration_stage(s, d, 'sr'),
           'derain': lambda s, d: _restoration_stage(s, d, 'derain')}


def _build(tmp_path: Path, stages: tuple) -> Path:
    from densekit.demo import write_summary

    work = tmp_path / 'demo'
    for name in stages:
        start = time.perf_counter()
        stage = work / name
        stage.mkdir(parents=True)
        metrics = RUNNERS[name](stage, tmp_path / 'data')
        metrics['seconds'] = round(time.perf_counter() - start, 1)
        write_summary(work / 'summary.json', name, metrics)
    return work


def _check_page(page: Path, tmp_path: Path, expected: tuple) -> str:
    text = page.read_text()
    # self-contained: every image is embedded, nothing is fetched
    assert 'src="http' not in text and 'src="file' not in text
    sources = re.findall(r'<img [^>]*src="([^"]{0,30})', text)
    assert sources and all(s.startswith('data:image/png;base64,') for s in sources)
    res = _chromium(page, '--dump-dom')
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    images = re.findall(r'<img [^>]*>', dom)
    assert len(images) == len(sources)
    assert all('data-loaded="1"' in img for img in images), 'an image did not load'
    assert re.search(r'id="image-check" data-ok="1">(\d+) of \1 images loaded', dom)
    for stage in STAGES:
        section = re.search(rf'<section class="stage( missing)?" id="stage-{stage}"', dom)
        assert section is not None, stage
        assert (section.group(1) is None) == (stage in expected), stage
    shot = tmp_path / 'page.png'
    res = _chromium(page, f'--screenshot={shot}', '--window-size=1400,2400')
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    picture = cv2.imread(str(shot))
    assert picture.shape[:2] == (2400, 1400)
    rows = (picture.reshape(60, 40, 1400, 3).std(axis=(1, 2, 3)) > 10).sum()
    assert rows > 20  # most bands of the page hold pictures or text, not blank white
    return dom


@pytest.mark.slow  # runs two demo stages (25 s)
def test_report_of_seg_and_sr_stages_marks_the_others_missing(tmp_path: Path) -> None:
    from densekit.analysis.report import write_report

    _browser()
    work = _build(tmp_path, ('seg', 'sr'))
    page = write_report(work)
    assert page == work / 'index.html'
    dom = _check_page(page, tmp_path, ('seg', 'sr'))
    seg = dom.split('id="stage-seg"')[1].split('</section>')[0]
    assert 'gate: mIoU' in seg and 'below the gate' in seg  # 2 iterations stay below 80
    assert seg.count('<img') == 2  # training curve + image|ground truth|prediction with legend
    assert 'pictures unavailable' not in dom
    sr = dom.split('id="stage-sr"')[1].split('</section>')[0]
    assert 'gate: PSNR-Y gain over bicubic' in sr and sr.count('<img') == 2
    # the seg picture is large: 64-px images enlarged to 256 px, three panels and a legend
    import base64
    data = re.findall(r'src="data:image/png;base64,([^"]+)"', seg)[1]
    picture = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape[0] >= 2 * 256 and picture.shape[1] >= 3 * 256


@pytest.mark.slow  # ~1.5 min: all five stages for 2 iterations each
def test_report_of_every_stage(tmp_path: Path) -> None:
    from densekit.analysis.report import write_report

    _browser()
    work = _build(tmp_path, STAGES)
    dom = _check_page(write_report(work), tmp_path, STAGES)
    assert 'pictures unavailable' not in dom and 'no training curve' not in dom
    for stage in STAGES:
        section = dom.split(f'id="stage-{stage}"')[1].split('</section>')[0]
        assert section.count('<img') >= 2 and 'gate:' in section, stage
