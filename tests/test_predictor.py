"""``densekit.Predictor``: arrays, files and volumes in, per-task results out, equal to infer.

Each task family is checked three ways: the Predictor on an array equals the Predictor on
the same pixels as a file, equals what ``densekit infer`` wrote for that file, and a batch
equals the same inputs one at a time.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
import torch
from mmengine.config import Config
from skimage import data as photos

import densekit
from densekit.checkpoint import CheckpointMismatchError
from densekit.inference import infer
from densekit.tasks.restoration.inference import restore_array
from tests.conftest import DET_CONFIG, SEG_CONFIG
from tests.test_inference_safety import MED_CONFIG, SR_CONFIG, _save_model


def _rgb(name: str, height: int, width: int) -> np.ndarray:
    image = getattr(photos, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(cv2.resize(image[..., :3], (width, height),
                                           interpolation=cv2.INTER_AREA))


def _save_rgb(path: Path, rgb: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR if rgb.shape[2] == 3
                                                    else cv2.COLOR_RGBA2BGRA)
    assert cv2.imwrite(str(path), pixels)
    return str(path)


# --- segmentation -----------------------------------------------------------------------

@pytest.fixture(scope='module')
def seg(tmp_path_factory: pytest.TempPathFactory) -> densekit.Predictor:
    ckpt = _save_model(SEG_CONFIG, tmp_path_factory.mktemp('pseg') / 'seg.pth')
    return densekit.Predictor(str(SEG_CONFIG), ckpt, device='cpu')


def test_segmentation_arrays_files_and_infer_agree(seg, tmp_path) -> None:
    rgb = _rgb('coffee', 53, 70)  # odd size: the labels come back at the input's size
    labels = seg.predict(rgb)
    assert labels.shape == (53, 70) and labels.dtype == np.int64
    assert 0 <= labels.min() and labels.max() < 6
    path = _save_rgb(tmp_path / 'in' / 'coffee.png', rgb)
    np.testing.assert_array_equal(seg.predict(path), labels)
    np.testing.assert_array_equal(seg.predict(Path(path)), labels)
    summary = infer(str(SEG_CONFIG), seg.checkpoint, [path], str(tmp_path / 'out'),
                    device='cpu')
    assert summary.ok
    written = cv2.imread(str(tmp_path / 'out' / 'coffee_label.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(written, labels)
    # 16-bit pixels v * 257 are the 8-bit v exactly; float pixels in [0, 1] are v / 255
    np.testing.assert_array_equal(seg.predict(rgb.astype(np.uint16) * 257), labels)
    agree = (seg.predict(rgb.astype(np.float32) / 255) == labels).mean()
    assert agree > 0.99
    gray = rgb[..., 1]
    np.testing.assert_array_equal(seg.predict(gray), seg.predict(np.repeat(gray[..., None], 3,
                                                                           axis=2)))


def test_segmentation_batches_equal_single_inputs(seg) -> None:
    images = [_rgb('chelsea', 48, 64), _rgb('astronaut', 40, 40), _rgb('coffee', 48, 64),
              _rgb('rocket', 48, 64)]
    singles = [seg.predict(image) for image in images]
    batched = seg.predict(images, batch_size=3)
    assert isinstance(batched, list) and len(batched) == 4
    for one, many in zip(singles, batched):
        np.testing.assert_array_equal(one, many)
    assert seg.predict(tuple(images[:1]))[0].shape == (48, 64)


def test_bad_inputs_and_arguments_are_named(seg, tmp_path) -> None:
    with pytest.raises(ValueError, match=r'float pixels must lie in \[0, 1\]'):
        seg.predict(np.full((8, 8, 3), 2.0, np.float32))
    with pytest.raises(TypeError, match='uint8, uint16 or float, got dtype int32'):
        seg.predict(np.zeros((8, 8, 3), np.int32))
    with pytest.raises(ValueError, match=r'got shape \(8, 8, 5\)'):
        seg.predict(np.zeros((8, 8, 5), np.uint8))
    with pytest.raises(TypeError, match='numpy array, got int'):
        seg.predict(3)
    with pytest.raises(ValueError, match='batch_size must be a positive int, got 0'):
        seg.predict([np.zeros((8, 8), np.uint8)] * 2, batch_size=0)
    with pytest.raises(ValueError, match='no such file'):
        seg.predict(str(tmp_path / 'missing.png'))
    with pytest.raises(ValueError, match="backend must be one of .*'pytorch'.*got 'tensorrt'"):
        densekit.Predictor(str(SEG_CONFIG), seg.checkpoint, backend='tensorrt')
    wrong = _save_model(DET_CONFIG, tmp_path / 'det.pth')
    with pytest.raises(CheckpointMismatchError):
        densekit.Predictor(str(SEG_CONFIG), wrong, device='cpu')


# --- detection --------------------------------------------------------------------------

def test_detection_returns_boxes_in_input_pixels_equal_to_infer(tmp_path) -> None:
    ckpt = _save_model(DET_CONFIG, tmp_path / 'det.pth')
    keep_all = {'model.test_cfg.score_thr': 0.0}  # an untrained head scores below 0.05
    det = densekit.Predictor(str(DET_CONFIG), ckpt, device='cpu', cfg_options=keep_all)
    rgb = _rgb('astronaut', 97, 131)
    out = det.predict(rgb)
    assert set(out) == {'boxes', 'scores', 'labels'}
    assert out['boxes'].dtype == np.float32 and out['boxes'].shape == (len(out['scores']), 4)
    assert out['scores'].dtype == np.float32 and out['labels'].dtype == np.int64
    assert len(out['scores']) == 100  # max_per_img
    boxes = out['boxes']
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    assert boxes.min() >= 0 and boxes[:, [0, 2]].max() <= 131 and boxes[:, [1, 3]].max() <= 97
    path = _save_rgb(tmp_path / 'in' / 'astronaut.png', rgb)
    summary = infer(str(DET_CONFIG), ckpt, [path], str(tmp_path / 'out'), device='cpu',
                    cfg_options=keep_all)
    assert summary.ok
    record = json.loads((tmp_path / 'out' / 'astronaut.json').read_text())
    written = np.array([d['bbox_xyxy'] for d in record['detections']], np.float32)
    np.testing.assert_allclose(written, boxes, atol=0.005 + 1e-4)  # JSON keeps 2 decimals
    assert [d['label'] for d in record['detections']] == out['labels'].tolist()
    batched = det.predict([rgb, rgb[:64]], batch_size=2)
    np.testing.assert_array_equal(batched[0]['boxes'], boxes)
    np.testing.assert_array_equal(batched[1]['boxes'], det.predict(rgb[:64])['boxes'])


# --- super-resolution -------------------------------------------------------------------

@pytest.fixture(scope='module')
def sr(tmp_path_factory: pytest.TempPathFactory) -> densekit.Predictor:
    folder = tmp_path_factory.mktemp('psr')
    config = folder / 'tiny_sr.py'
    config.write_text(f"_base_ = ['{SR_CONFIG}']\n"
                      'model = dict(backbone=dict(channels=8, num_blocks=1), '
                      'head=dict(in_channels=8))\n')
    ckpt = _save_model(Config.fromfile(str(config)), folder / 'sr.pth')
    return densekit.Predictor(str(config), ckpt, device='cpu', cfg_options={
        'infer_cfg.tile': 24, 'infer_cfg.overlap': 8})


def test_super_resolution_keeps_dtype_and_channels_and_equals_infer(sr, tmp_path) -> None:
    rgb = _rgb('chelsea', 41, 57)
    up = sr.predict(rgb)
    assert up.shape == (82, 114, 3) and up.dtype == np.uint8
    np.testing.assert_array_equal(up, restore_array(sr.model, rgb, tile=24, overlap=8))
    path = _save_rgb(tmp_path / 'in' / 'chelsea.png', rgb)
    summary = infer(sr.cfg, sr.checkpoint, [path], str(tmp_path / 'out'), device='cpu')
    assert summary.ok
    written = cv2.cvtColor(cv2.imread(str(tmp_path / 'out' / 'chelsea_x2.png')),
                           cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(written, up)
    np.testing.assert_array_equal(sr.predict(path), up)
    gray = rgb[..., 0]
    assert sr.predict(gray).shape == (82, 114)
    assert sr.predict(gray[..., None]).shape == (82, 114, 1)
    np.testing.assert_array_equal(sr.predict(gray[..., None])[..., 0], sr.predict(gray))
    rgba = np.concatenate([rgb, np.full((41, 57, 1), 200, np.uint8)], axis=2)
    out = sr.predict(rgba)
    assert out.shape == (82, 114, 4)
    np.testing.assert_array_equal(out[..., :3], up)
    assert (out[..., 3] == 200).all()  # bicubic of a constant alpha
    deep = sr.predict(rgb.astype(np.uint16) * 257)
    assert deep.dtype == np.uint16 and deep.shape == up.shape
    # the float path is the uint8 path without the final rounding to 8 bits
    smooth = sr.predict(rgb.astype(np.float32) / 255)
    assert smooth.dtype == np.float32 and smooth.min() >= 0 and smooth.max() <= 1
    assert np.abs(smooth * 255 - up).max() <= 0.5 + 1e-3
    shapes = [a.shape for a in sr.predict([rgb, gray, rgb], batch_size=2)]
    assert shapes == [up.shape, (82, 114), up.shape]


# --- medical ----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def med(tmp_path_factory: pytest.TempPathFactory) -> densekit.Predictor:
    cfg = Config.fromfile(str(MED_CONFIG))
    cfg.model.test_cfg.roi_size = (16, 16, 16)
    ckpt = _save_model(cfg, tmp_path_factory.mktemp('pmed') / 'med.pth',
                       meta=dict(dataset_meta=dict(classes=('background', 'organ', 'lesion'))))
    return densekit.Predictor(cfg, ckpt, device='cpu')


def test_medical_volume_in_geometry_out_equal_to_infer(med, tmp_path) -> None:
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(2, 19, 22, 17)).astype(np.float32)  # two channels, as trained
    volume[:, 5:12, 6:15, 4:11] += 3.0
    affine = np.diag([2.0, 2.0, 2.0, 1.0])  # the config's target spacing: no resampling
    affine[:3, 3] = (-10.0, 4.0, 7.5)
    image = nib.Nifti1Image(np.moveaxis(volume, 0, -1), affine)
    image.header.set_intent('vector')  # the 4th axis holds channels
    labels_img = med.predict(image)
    assert isinstance(labels_img, nib.Nifti1Image)
    assert labels_img.shape == volume.shape[1:]
    np.testing.assert_allclose(labels_img.affine, affine)
    labels = np.asarray(labels_img.dataobj)
    assert set(np.unique(labels)) <= {0, 1, 2}
    path = tmp_path / 'in' / 'case.nii.gz'
    path.parent.mkdir()
    nib.save(image, str(path))
    summary = infer(med.cfg, med.checkpoint, [str(path)], str(tmp_path / 'out'),
                    device='cpu')
    assert summary.ok
    written = nib.load(str(tmp_path / 'out' / 'case_seg.nii.gz'))
    np.testing.assert_array_equal(np.asarray(written.dataobj), labels)
    np.testing.assert_allclose(written.affine, affine)
    np.testing.assert_array_equal(np.asarray(med.predict(str(path)).dataobj), labels)
    as_array = med.predict(volume)  # an array is taken at the target spacing
    assert isinstance(as_array, np.ndarray) and as_array.shape == volume.shape[1:]
    np.testing.assert_array_equal(as_array, labels)
    with pytest.raises(ValueError, match=r'case has 3 channel\(s\).*the model expects 2'):
        med.predict(np.concatenate([volume, volume[:1]]))
    with pytest.raises(ValueError, match='NaN or infinite'):
        med.predict(np.full((2, 8, 8, 8), np.nan, np.float32))
    with pytest.raises(TypeError, match='nibabel image or a numpy array, got dict'):
        med.predict([{'volume': 1}])


def test_top_level_name_and_repr(seg) -> None:
    from densekit.predictor import Predictor

    assert densekit.Predictor is Predictor
    assert repr(seg).startswith("Predictor(task='seg', model=")
    with pytest.raises(AttributeError, match='no attribute'):
        densekit.NoSuchThing  # noqa: B018
    assert torch.is_grad_enabled()
