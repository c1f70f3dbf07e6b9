"""Segmentation window by window: equal to whole-image inference, labels-only memory, 2D
sliding windows compared with MONAI."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from monai.inferers import sliding_window_inference as monai_sliding_window
from skimage import data as photos

import densekit
from densekit.errors import ArgumentError
from densekit.inference import InferOptions, infer
from densekit.tasks.segmentation.windowed import segment_windows
from densekit.windowed.engine import (
    sliding_window_inference,
    sliding_window_labels,
)
from tests.conftest import SEG_CONFIG
from tests.test_inference_safety import _save_model


@pytest.fixture(scope='module')
def segmentor() -> torch.nn.Module:
    cfg = Config.fromfile(str(SEG_CONFIG))
    init_default_scope('densekit')
    torch.manual_seed(0)
    return MODELS.build(cfg.model).eval()


def _photo(height: int, width: int) -> np.ndarray:
    rgb = cv2.resize(photos.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb[..., ::-1])  # BGR, as the pipeline loads files


def _whole(model: torch.nn.Module, bgr: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(bgr).permute(2, 0, 1)[None].float()[:, [2, 1, 0]]
    x = (x - model.data_preprocessor.mean.reshape(1, -1, 1, 1)) / \
        model.data_preprocessor.std.reshape(1, -1, 1, 1)
    shape = tuple(x.shape[2:])
    with torch.no_grad():
        logits = model.encode_decode(x, [dict(img_shape=shape, pad_shape=shape,
                                              ori_shape=shape)])
    return logits.argmax(1)[0].numpy()


def test_windows_equal_whole_image_labels(segmentor) -> None:
    bgr = _photo(203, 261)  # odd sizes, several windows each way
    whole = _whole(segmentor, bgr)
    windowed = segment_windows(segmentor, bgr, window=128, overlap=0.5)
    assert windowed.shape == (203, 261) and windowed.dtype == np.uint8  # 7 classes
    # the FPN sees far beyond a 128-px window (and untrained scores are near ties), so the
    # blending decides some pixels; the exact property is tested with a small receptive field
    assert (windowed == whole).mean() > 0.9
    # one window covering the image is exactly whole-image inference
    np.testing.assert_array_equal(segment_windows(segmentor, bgr[:128, :128], window=128),
                                  _whole(segmentor, bgr[:128, :128]))
    with pytest.raises(ArgumentError, match=r'window must be a positive int or \(height, '
                                            r'width\), got \(0, 8\)'):
        segment_windows(segmentor, bgr, window=(0, 8))


def test_small_receptive_field_windows_are_exact() -> None:
    # a 3-conv network (receptive field 7, radius 3): with a margin of 3 at the inner window
    # borders every pixel is blended only from windows that saw all its context
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 5, 3, padding=1)).eval()
    image = torch.from_numpy(_photo(150, 170)).permute(2, 0, 1)[None]
    with torch.no_grad():
        whole = net(image.float()).argmax(1)
        for mode in ('constant', 'gaussian'):
            labels = sliding_window_labels(image, (64, 48), 2, lambda w: net(w.float()),
                                           overlap=0.5, mode=mode, margin=3)
            assert labels.dtype == torch.uint8
            assert torch.equal(labels.long(), whole)
            loose = sliding_window_labels(image, (64, 48), 2, lambda w: net(w.float()),
                                          overlap=0.5, mode=mode)
            assert not torch.equal(loose.long(), whole)  # without the margin it is not exact
    with pytest.raises(ValueError, match='margin 20 on axis 0 needs an overlap of at least 40'):
        sliding_window_labels(image, (64, 48), 2, lambda w: net(w.float()), overlap=0.5,
                              margin=20)


@pytest.mark.parametrize('roi,overlap,mode', [((16, 16), 0.25, 'constant'),
                                              ((7, 13), 0.5, 'gaussian'),
                                              ((40, 40), 0.0, 'constant'),
                                              ((5, 9), 0.75, 'gaussian')])
def test_2d_sliding_window_matches_monai(roi, overlap, mode) -> None:
    torch.manual_seed(2)
    net = torch.nn.Conv2d(2, 3, 3, padding=1).double()
    image = torch.rand(2, 2, 31, 27, dtype=torch.float64)
    with torch.no_grad():
        ours = sliding_window_inference(image, roi, 3, net, overlap=overlap, mode=mode)
        theirs = monai_sliding_window(image, roi, 3, net, overlap=overlap, mode=mode)
    assert ours.shape == theirs.shape == (2, 3, 31, 27)
    assert float((ours - theirs).abs().max()) < 1e-12


def test_infer_tile_segments_window_by_window(tmp_path) -> None:
    ckpt = _save_model(SEG_CONFIG, tmp_path / 'seg.pth')
    bgr = _photo(203, 261)
    path = tmp_path / 'in' / 'photo.png'
    path.parent.mkdir()
    cv2.imwrite(str(path), bgr)
    summary = infer(str(SEG_CONFIG), ckpt, [str(path)], str(tmp_path / 'out'), device='cpu',
                    options=InferOptions(tile=128, overlap=64, progress=False))
    assert summary.ok
    written = cv2.imread(str(tmp_path / 'out' / 'photo_label.png'), cv2.IMREAD_UNCHANGED)
    model = densekit.Predictor(str(SEG_CONFIG), ckpt, device='cpu').model
    np.testing.assert_array_equal(written, segment_windows(model, bgr, 128, 0.5, margin=16))
