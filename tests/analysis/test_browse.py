"""``densekit browse``: pictures of augmented training samples for every task family."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.cli_capture import run_cli
from tests.conftest import REPO, SEG_CONFIG, tiny_seg_options

CONFIGS = REPO / 'configs'


def _read(path: Path) -> np.ndarray:
    return cv2.imread(str(path))[..., ::-1]  # RGB


def test_browse_seg_draws_labels_with_legend_and_augments(shapes_root: Path,
                                                          tmp_path: Path) -> None:
    from densekit.apis import parse_cfg_options
    from densekit.inference import class_palette
    from densekit.tasks.segmentation.synthetic import PALETTE

    options = tiny_seg_options(shapes_root)[:3]
    code, out, _ = run_cli(['browse', str(SEG_CONFIG), '--out', str(tmp_path / 'a'), '--num',
                            '3', '--seed', '1', '--cfg-options', *options])
    assert code == 0 and 'browse: 3 pictures of train samples' in out
    pictures = sorted((tmp_path / 'a').glob('*.png'))
    assert [p.name[:4] for p in pictures] == ['000_', '001_', '002_']
    picture = _read(pictures[0])
    assert picture.shape[0] >= 256 + 24  # 64-px crops enlarged to at least 256 px
    # the middle panel holds only palette colours (and white for ignored pixels)
    width = (picture.shape[1] - 12) // 3
    label_panel = picture[30:250, width + 6 + 4:2 * width + 6 - 4]
    palette = class_palette(len(PALETTE), PALETTE)
    colours = {tuple(c) for c in label_panel.reshape(-1, 3)}
    allowed = {tuple(int(v) for v in c) for c in palette} | {(255, 255, 255)}
    assert colours <= allowed and len(colours) >= 2
    # the legend names the classes under the pictures
    legend = picture[-26:]
    assert (np.abs(legend.astype(int) - palette[1]).sum(-1) == 0).sum() > 100
    # same seed: same augmentations; another seed: others
    from densekit.analysis.browse import browse
    again = browse(str(SEG_CONFIG), tmp_path / 'b', num=3, seed=1,
                   cfg_options=parse_cfg_options(options))
    other = browse(str(SEG_CONFIG), tmp_path / 'c', num=3, seed=2,
                   cfg_options=parse_cfg_options(options))
    assert all(np.array_equal(_read(p), _read(q)) for p, q in zip(pictures, again))
    assert not all(np.array_equal(_read(p), _read(q)) for p, q in zip(pictures, other))
    with pytest.raises(ValueError, match='num=0: expected an integer >= 1'):
        browse(str(SEG_CONFIG), tmp_path / 'd', num=0)


def test_browse_det_sr_and_medical(tmp_path: Path) -> None:
    from densekit.analysis.browse import browse
    from densekit.tasks.detection import generate_detection_dataset
    from densekit.tasks.medical3d.phantoms import generate_phantoms
    from densekit.tasks.restoration.photos import generate_restoration_photos

    coco = generate_detection_dataset(tmp_path / 'coco', num_train=2, num_val=1)
    written = browse(str(CONFIGS / 'detection/retinanet_r18-half_fpn_1xb8-2000i_shapes-160x160.py'),
                     tmp_path / 'det', num=2, seed=0,
                     cfg_options={'train_dataloader.dataset.data_root': str(coco)})
    picture = _read(written[0])
    assert picture.shape[0] >= 256 + 24 and picture.shape[1] >= 256
    assert len(written) == 2

    photos = generate_restoration_photos(tmp_path / 'photos', train=('page',),
                                         val=('microaneurysms',))
    written = browse(str(CONFIGS / 'restoration/edsr_x2c32b8_1xb4-4min_photos.py'), tmp_path / 'sr',
                     num=1, seed=0,
                     cfg_options={'train_dataloader.dataset.data_root': str(photos)})
    picture = _read(written[0])
    body = picture[24:]
    half = (picture.shape[1] - 6) // 2
    lq, gt = body[:, :half].astype(int), body[:, half + 6:].astype(int)
    assert lq.shape == gt.shape and lq.shape[0] >= 256
    assert 2 < np.abs(lq - gt).mean() < 40  # the same patch: LQ is a blurred GT

    phantoms = generate_phantoms(tmp_path / 'ph', num_train=1, num_val=1, num_test=0,
                                 fov_mm=(40.0, 56.0, 56.0))
    written = browse(str(CONFIGS / 'medical3d/resunet-tiny_1xb2-600i_phantoms-48x48x48.py'),
                     tmp_path / 'med', num=1, seed=0,
                     cfg_options={'train_dataloader.dataset.data_root': str(phantoms)})
    picture = _read(written[0])
    assert written[0].name == '000_phantom_000.png'
    assert picture.shape[0] > 2 * 256  # one row of three slices per channel (2 channels)
    from densekit.tasks.medical3d.viz import LABEL_COLOURS
    green = (np.abs(picture.astype(int) - LABEL_COLOURS[1]).sum(-1) < 120).sum()
    assert green > 500  # the organ overlay is drawn
