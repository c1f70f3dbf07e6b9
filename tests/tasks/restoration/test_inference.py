"""Restoration inference: bit depth, grayscale/RGBA, EXIF orientation, corrupt files, tiling."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image, ImageOps

from densekit.inference import UnreadableInput, infer
from densekit.registry import MODELS
from densekit.tasks.restoration.imageio import apply_orientation, read_image
from densekit.tasks.restoration.imresize import imresize
from densekit.tasks.restoration.inference import restoration_handler, restore_array
from tests.restoration_threads import idle_threads  # noqa: F401

init_default_scope('densekit')
REPO = Path(__file__).resolve().parents[3]


def _sr_model(scale: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS.build(dict(type='Restorer', scale=scale,
                             backbone=dict(type='EDSRBody', channels=8, num_blocks=1),
                             head=dict(type='PixelShuffleHead', in_channels=8, scale=scale,
                                       input_skip='bicubic'))).eval()


def _derain_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS.build(dict(type='Restorer', backbone=dict(type='ResUNet', channels=(8, 16)),
                             head=dict(type='ReconstructionHead', in_channels=8))).eval()


def _photo(h: int = 40, w: int = 52) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return np.stack([yy * 255 // h, xx * 255 // w, (yy + xx) % 256], axis=2).astype(np.uint8)


@pytest.mark.parametrize('orientation', range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    path = tmp_path / f'o{orientation}.png'
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_photo(6, 9)).save(path, exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert('RGB'))
    np.testing.assert_array_equal(read_image(str(path)).rgb, expected)
    np.testing.assert_array_equal(apply_orientation(_photo(6, 9), orientation), expected)


def test_jpeg_orientation_and_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / 'rotated.jpg'
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_photo(32, 48)).save(path, exif=exif.tobytes(), quality=95)
    image = read_image(str(path))
    pillow = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    assert image.rgb.shape == (48, 32, 3) == pillow.shape
    assert np.abs(image.rgb.astype(int) - pillow).max() <= 2
    truncated = tmp_path / 'truncated.jpg'
    truncated.write_bytes(path.read_bytes()[:400])
    with pytest.raises(UnreadableInput):
        read_image(str(truncated))
    (tmp_path / 'noise.png').write_bytes(b'\x89PNG not really')
    with pytest.raises(UnreadableInput):
        read_image(str(tmp_path / 'noise.png'))


def _handle(model: torch.nn.Module, path: Path, out: Path, **cfg) -> np.ndarray:
    handler = restoration_handler(Config(dict(infer_cfg=cfg)), model)
    written = handler.handle(str(path), str(out))
    assert len(written) == 1
    return cv2.imread(written[0], cv2.IMREAD_UNCHANGED)


def test_bit_depth_channels_and_alpha_are_kept(tmp_path: Path) -> None:
    sr, derain = _sr_model(), _derain_model()
    photo = _photo()
    deep = photo.astype(np.uint16) * 257 + 7
    cv2.imwrite(str(tmp_path / 'deep.png'), deep[..., ::-1])
    cv2.imwrite(str(tmp_path / 'gray.tif'), deep[..., 0])
    alpha = (np.arange(40 * 52).reshape(40, 52) % 256).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'rgba.png'), np.dstack([photo[..., ::-1], alpha]))
    out = tmp_path / 'out'
    result = _handle(sr, tmp_path / 'deep.png', out)
    assert result.dtype == np.uint16 and result.shape == (80, 104, 3)
    # 16-bit output keeps 16-bit precision: it matches the float model output, not 8-bit levels
    expected = sr.restore(torch.from_numpy(deep / 65535.0).permute(2, 0, 1)[None].float())[0]
    expected = np.floor(expected.permute(1, 2, 0).numpy() * 65535 + 0.5)
    assert np.abs(result[..., ::-1].astype(float) - expected).max() <= 2
    gray = _handle(sr, tmp_path / 'gray.tif', out)
    assert gray.dtype == np.uint16 and gray.shape == (80, 104)
    assert (out / 'gray_x2.tif').is_file()
    rgba = _handle(sr, tmp_path / 'rgba.png', out)
    assert rgba.shape == (80, 104, 4)
    np.testing.assert_array_equal(rgba[..., 3], imresize(alpha, 2))
    rgba_derain = _handle(derain, tmp_path / 'rgba.png', out)
    assert rgba_derain.shape == (40, 52, 4) and (out / 'rgba_derain.png').is_file()
    np.testing.assert_array_equal(rgba_derain[..., 3], alpha)


def test_tiled_handler_matches_whole_image() -> None:
    model = _sr_model()
    photo = np.random.default_rng(0).integers(0, 256, (100, 120, 3)).astype(np.uint8)
    whole = restore_array(model, photo, tile=512, overlap=16)
    tiled = restore_array(model, photo, tile=64, overlap=20)
    assert np.abs(whole.astype(int) - tiled).max() <= 1


def test_infer_end_to_end_skips_corrupt_and_never_overwrites(tmp_path: Path) -> None:
    model = _sr_model()
    ckpt = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    config = tmp_path / 'tiny_sr.py'
    config.write_text(
        "_base_ = ['" + str(REPO / 'configs/restoration/edsr_x2c32b8_1xb4-4min_photos.py') + "']\n"
        "model = dict(backbone=dict(channels=8, num_blocks=1), head=dict(in_channels=8))\n"
        'infer_cfg = dict(tile=32, overlap=8)\n')
    images = tmp_path / 'images'
    images.mkdir()
    cv2.imwrite(str(images / 'a.png'), _photo()[..., ::-1])
    (images / 'broken.png').write_bytes(b'not an image')
    before = {p.name: p.read_bytes() for p in images.iterdir()}
    summary = infer(str(config), str(ckpt), [str(images)], str(images), device='cpu')
    assert [Path(p).name for p in summary.written] == ['a_x2.png']
    assert list(summary.failed) == [str(images / 'broken.png')]
    assert {p.name: p.read_bytes() for p in images.iterdir() if p.name in before} == before
    assert cv2.imread(str(images / 'a_x2.png')).shape == (80, 104, 3)
