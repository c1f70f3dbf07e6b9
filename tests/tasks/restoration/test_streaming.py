"""Restoration inference in bounded memory: streamed PNG output equal to the old whole-image
output, gray+alpha kept, float TIFFs and truncated PNGs refused with the right words, tile
progress and the --tile/--overlap options."""
from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image
from skimage import data

from densekit.imageio import png_color_type
from densekit.inference import InferOptions, UnreadableInput, infer
from densekit.tasks.restoration.imageio import PNGStreamWriter, read_image
from densekit.tasks.restoration.imresize import imresize_tensor
from densekit.tasks.restoration.inference import restoration_handler, restore_array
from densekit.tasks.restoration.tiling import TileGrid, tiled_restore
from tests.restoration_threads import idle_threads  # noqa: F401
from tests.tasks.restoration.test_inference import REPO, _derain_model, _sr_model


def _chunks(blob: bytes) -> List[tuple]:
    """``(type, data, crc_ok)`` of every chunk of a PNG file."""
    assert blob[:8] == b'\x89PNG\r\n\x1a\n'
    pos, found = 8, []
    while pos < len(blob):
        length, kind = struct.unpack('>I4s', blob[pos:pos + 8])
        payload = blob[pos + 8:pos + 8 + length]
        crc = struct.unpack('>I', blob[pos + 8 + length:pos + 12 + length])[0]
        found.append((kind, payload, zlib.crc32(kind + payload) == crc))
        pos += 12 + length
    return found


def _to_cv2_order(pixels: np.ndarray) -> np.ndarray:
    """What cv2.imread gives for a PNG holding ``pixels`` (gray, GA, RGB, RGBA order)."""
    if pixels.ndim == 2:
        return pixels
    if pixels.shape[2] == 2:
        return np.dstack([pixels[..., 0]] * 3 + [pixels[..., 1]])
    return np.concatenate([pixels[..., 2::-1], pixels[..., 3:]], axis=2)


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16])
@pytest.mark.parametrize('channels', [1, 2, 3, 4])
def test_png_stream_writer_round_trips(tmp_path: Path, dtype: type, channels: int) -> None:
    rng = np.random.default_rng(channels)
    height, width = 203, 61
    shape = (height, width) if channels == 1 else (height, width, channels)
    pixels = rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    pixels[:100] //= 7  # smoother rows too: the Sub filter's wrap-around is exercised both ways
    path = tmp_path / 'stream.png'
    with open(path, 'wb') as handle:
        png = PNGStreamWriter(handle, width, height, channels, dtype)
        for start in range(0, height, 37):  # uneven bands, crossing the 64-row chunks
            png.write_rows(pixels[start:start + 37])
        png.close()
    blob = path.read_bytes()
    chunks = _chunks(blob)
    assert all(ok for _, _, ok in chunks)
    assert [c[0] for c in chunks][0] == b'IHDR' and chunks[-1][0] == b'IEND'
    assert struct.unpack('>IIBB', chunks[0][1][:10]) == (width, height, 8 * np.dtype(dtype)
                                                         .itemsize, {1: 0, 2: 4, 3: 2, 4: 6}
                                                         [channels])
    assert png_color_type(str(path)) == {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == dtype
    np.testing.assert_array_equal(decoded, _to_cv2_order(pixels))
    if dtype == np.uint8:  # a second, independent decoder
        np.testing.assert_array_equal(np.asarray(Image.open(path)), pixels)


def test_png_stream_writer_rejects_bad_use() -> None:
    buf = io.BytesIO()
    with pytest.raises(ValueError, match='channels'):
        PNGStreamWriter(buf, 4, 4, 5, np.uint8)
    with pytest.raises(TypeError, match='dtype'):
        PNGStreamWriter(buf, 4, 4, 3, np.float32)
    with pytest.raises(ValueError, match='width'):
        PNGStreamWriter(buf, 0, 4, 3, np.uint8)
    png = PNGStreamWriter(io.BytesIO(), 4, 3, 3, np.uint8)
    with pytest.raises(ValueError, match=r'rows must be \(r, 4, 3\) uint8'):
        png.write_rows(np.zeros((2, 4, 4), np.uint8))
    png.write_rows(np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match='2 of 3 rows'):
        png.close()
    with pytest.raises(ValueError, match='height 3'):
        png.write_rows(np.zeros((2, 4, 3), np.uint8))


def _photos() -> dict:
    """Real photos (scikit-image) at 8 and 16 bits, gray and colour, with alpha."""
    colour = data.astronaut()[60:160, 180:310]  # 100 x 130: several tiles of 48
    gray = data.camera()[200:300, 200:330]
    yy, xx = np.mgrid[:100, :130]
    alpha = ((yy * 2 + xx) % 256).astype(np.uint8)

    def deep(a: np.ndarray) -> np.ndarray:
        return a.astype(np.uint16) * 257 + (np.arange(a.size).reshape(a.shape) % 199).astype(
            np.uint16)

    return {'rgb8.png': colour[..., ::-1], 'rgb16.png': deep(colour)[..., ::-1],
            'gray8.png': gray, 'gray16.png': deep(gray),
            'rgba8.png': np.dstack([colour[..., ::-1], alpha]),
            'rgba16.png': np.dstack([deep(colour)[..., ::-1], deep(alpha)]),
            'rgb16.tif': deep(colour)[..., ::-1], 'gray8.tif': gray}


def _previous_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """The previous code's alpha: float32 / peak, MATLAB bicubic, rounded back."""
    if scale == 1:
        return alpha
    peak = float(np.iinfo(alpha.dtype).max)
    up = imresize_tensor(torch.from_numpy(alpha.astype(np.float32) / peak)[None], float(scale))
    return np.floor(up[0].clamp_(0, 1).numpy() * peak + 0.5).astype(alpha.dtype)


def _previous_output(model: torch.nn.Module, path: str, tile: int, overlap: int) -> np.ndarray:
    """What the pre-streaming code wrote (decoded): the whole input as float32, the whole
    output quantised, alpha resized whole, encoded by OpenCV (this is that code, inlined)."""
    image = read_image(path)
    rgb, peak, scale = image.rgb, image.peak, int(model.scale)
    whole = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div_(peak)
    out = tiled_restore(model.restore, whole, scale, tile, overlap, align=model.size_divisor)
    out = out[0].clamp_(0, 1).mul_(peak).add_(0.5).floor_().permute(1, 2, 0).numpy()
    out = out.astype(rgb.dtype)
    channels = [out.mean(axis=2, dtype=np.float64).round().astype(rgb.dtype)[..., None]
                if image.gray else out[..., ::-1]]
    if image.alpha is not None:
        channels.append(_previous_alpha(image.alpha, scale)[..., None])
    pixels = np.ascontiguousarray(np.concatenate(channels, axis=2))
    pixels = pixels[..., 0] if pixels.shape[2] == 1 else pixels
    ok, buf = cv2.imencode(Path(path).suffix, pixels)
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize('kind', ['sr', 'derain'])
def test_streamed_output_equals_the_previous_whole_image_output(tmp_path: Path, kind: str
                                                                ) -> None:
    model = _sr_model() if kind == 'sr' else _derain_model()
    tile, overlap = 48, 8
    handler = restoration_handler(Config(dict(infer_cfg=dict(tile=tile, overlap=overlap))),
                                  model, InferOptions(progress=False))
    scale = int(model.scale)
    for name, pixels in _photos().items():
        path = tmp_path / name
        assert cv2.imwrite(str(path), pixels)
        written = handler.handle(str(path), str(tmp_path / 'out'))
        result = cv2.imread(written[0], cv2.IMREAD_UNCHANGED)
        expected = _previous_output(model, str(path), tile, overlap)
        assert result.shape == expected.shape == (100 * scale, 130 * scale, *pixels.shape[2:])
        assert result.dtype == expected.dtype == pixels.dtype, name
        np.testing.assert_array_equal(result, expected, err_msg=name)
        if name.endswith('.png'):
            assert png_color_type(written[0]) == png_color_type(str(path)), name
    assert not [p.name for p in (tmp_path / 'out').iterdir() if '.tmp-' in p.name]


def _write_gray_alpha(path: Path, gray: np.ndarray, alpha: np.ndarray) -> None:
    if gray.dtype == np.uint8:
        Image.fromarray(np.dstack([gray, alpha]), 'LA').save(path)
    else:  # Pillow cannot write 16-bit LA: the stream writer does (tested above)
        with open(path, 'wb') as handle:
            png = PNGStreamWriter(handle, gray.shape[1], gray.shape[0], 2, np.uint16)
            png.write_rows(np.dstack([gray, alpha]))
            png.close()


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16])
def test_gray_alpha_png_comes_back_as_gray_alpha(tmp_path: Path, dtype: type) -> None:
    model = _sr_model()
    camera = data.camera()[100:160, 150:230].astype(dtype)
    alpha = (np.add.outer(np.arange(60), np.arange(80)) * 3 % 256).astype(dtype)
    if dtype == np.uint16:
        camera, alpha = camera * 257 + 11, alpha * 250
    path = tmp_path / 'ga.png'
    _write_gray_alpha(path, camera, alpha)
    assert png_color_type(str(path)) == 4
    image = read_image(str(path))
    assert image.gray and image.alpha is not None and image.rgb.dtype == dtype
    np.testing.assert_array_equal(image.rgb[..., 0], camera)
    np.testing.assert_array_equal(image.alpha, alpha)
    handler = restoration_handler(Config(dict(infer_cfg=dict(tile=32, overlap=8))), model,
                                  InferOptions(progress=False))
    out = handler.handle(str(path), str(tmp_path / 'out'))[0]
    assert png_color_type(out) == 4
    decoded = cv2.imread(out, cv2.IMREAD_UNCHANGED)  # OpenCV shows gray+alpha as BGRA
    assert decoded.dtype == dtype and decoded.shape == (120, 160, 4)
    restored = restore_array(model, image.rgb, 32, 8)
    gray = restored.mean(axis=2, dtype=np.float64).round().astype(dtype)
    for channel in range(3):
        np.testing.assert_array_equal(decoded[..., channel], gray)
    np.testing.assert_array_equal(decoded[..., 3], _previous_alpha(alpha, 2))
    # plain gray stays colour type 0, RGB 2, RGBA 6
    for name, pixels, kind in (('g.png', camera, 0), ('c.png', np.dstack([camera] * 3), 2),
                               ('a.png', np.dstack([camera] * 3 + [alpha]), 6)):
        cv2.imwrite(str(tmp_path / name), pixels)
        written = handler.handle(str(tmp_path / name), str(tmp_path / 'out'))[0]
        assert png_color_type(written) == kind, name


def _float_tiffs(tmp_path: Path) -> dict:
    values = data.camera()[:40, :50].astype(np.float64) / 255
    paths = {}
    try:
        import tifffile
    except ImportError:
        tifffile = None
    if tifffile is not None:
        for dtype in ('float32', 'float64'):
            paths[dtype] = tmp_path / f'{dtype}.tif'
            tifffile.imwrite(paths[dtype], values.astype(dtype))
    paths['float32 pillow'] = tmp_path / 'pillow_f.tif'
    Image.fromarray(values.astype(np.float32), 'F').save(paths['float32 pillow'])
    return paths


def test_float_tiff_is_unsupported_not_corrupt(tmp_path: Path) -> None:
    paths = _float_tiffs(tmp_path)
    assert 'float32 pillow' in paths
    for name, path in paths.items():
        with pytest.raises(UnreadableInput) as err:
            read_image(str(path))
        kind = name.split()[0]
        assert f'unsupported pixel type {kind}' in str(err.value), name
        assert 'corrupt' not in str(err.value), name


def test_rgb_float_tiff_names_its_pixel_type(tmp_path: Path) -> None:
    tifffile = pytest.importorskip('tifffile')
    path = tmp_path / 'rgb_float64.tif'
    tifffile.imwrite(path, np.random.default_rng(0).random((20, 30, 3)), photometric='rgb')
    with pytest.raises(UnreadableInput, match='unsupported pixel type float64'):
        read_image(str(path))


def test_truncated_png_is_refused(tmp_path: Path) -> None:
    path = tmp_path / 'whole.png'
    cv2.imwrite(str(path), data.astronaut()[..., ::-1])
    assert read_image(str(path)).rgb.shape == (512, 512, 3)
    blob = path.read_bytes()
    for cut in (len(blob) // 2, len(blob) - 12):  # mid-stream, and only IEND missing
        truncated = tmp_path / f'cut{cut}.png'
        truncated.write_bytes(blob[:cut])
        # OpenCV alone would decode it (grey rows); the reader must refuse
        with pytest.raises(UnreadableInput, match='truncated'):
            read_image(str(truncated))


def test_infer_reports_float_tiff_and_truncated_png_and_goes_on(tmp_path: Path) -> None:
    model = _sr_model()
    ckpt = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    config = tmp_path / 'tiny_sr.py'
    config.write_text(
        "_base_ = ['" + str(REPO / 'configs/restoration/edsr_x2c32b8_1xb4-4min_photos.py') + "']\n"
        "model = dict(backbone=dict(channels=8, num_blocks=1), head=dict(in_channels=8))\n")
    images = tmp_path / 'images'
    images.mkdir()
    cv2.imwrite(str(images / 'good.png'), data.astronaut()[:40, :60, ::-1])
    blob = (images / 'good.png').read_bytes()
    (images / 'cut.png').write_bytes(blob[:len(blob) // 2])
    Image.fromarray(data.camera()[:30, :30].astype(np.float32), 'F').save(images / 'f.tif')
    summary = infer(str(config), str(ckpt), [str(images)], str(tmp_path / 'out'), device='cpu',
                    options=InferOptions(progress=False))
    assert [Path(p).name for p in summary.written] == ['good_x2.png']
    assert 'truncated' in summary.failed[str(images / 'cut.png')]
    assert 'unsupported pixel type float32' in summary.failed[str(images / 'f.tif')]
    assert not summary.ok


def test_tile_progress_counts_every_tile(tmp_path: Path, capsys: pytest.CaptureFixture
                                        ) -> None:
    model = _sr_model()
    for height, width, tile, overlap in ((70, 40, 32, 8), (100, 130, 48, 8), (30, 30, 32, 8)):
        ticks: List[int] = []
        image = torch.rand(1, 3, height, width)
        tiled_restore(model.restore, image, 2, tile, overlap, sink=lambda row, rows: None,
                      progress=ticks.append)
        assert sum(ticks) == TileGrid.build(height, width, tile, overlap).num_tiles
    # the handler shows a tile bar only where an image has more than one row of tiles
    handler = restoration_handler(Config(dict()), model,
                                  InferOptions(tile=32, overlap=8, progress=True))
    photo = data.astronaut()[:70, :40]
    cv2.imwrite(str(tmp_path / 'tall.png'), photo[..., ::-1])
    pending = handler.predict([read_image(str(tmp_path / 'tall.png'))])[0]
    assert pending.grid.num_tiles == 6 and len(pending.grid.rows) == 3
    capsys.readouterr()
    handler.handle(str(tmp_path / 'tall.png'), str(tmp_path / 'out'))
    assert '/6 ' in capsys.readouterr().err
    cv2.imwrite(str(tmp_path / 'flat.png'), photo[:20, :, ::-1])
    handler.handle(str(tmp_path / 'flat.png'), str(tmp_path / 'out'))
    assert 'tile' not in capsys.readouterr().err


def test_tile_and_overlap_options_change_the_tiling(tmp_path: Path) -> None:
    model = _sr_model()
    calls: List[tuple] = []
    hook = model.backbone.register_forward_hook(
        lambda module, args, out: calls.append(tuple(args[0].shape[-2:])))
    path = tmp_path / 'photo.png'
    cv2.imwrite(str(path), data.astronaut()[100:200, 100:220, ::-1])
    results = {}
    try:
        for tile, overlap in ((None, None), (40, 12), (64, 20)):
            calls.clear()
            handler = restoration_handler(Config(dict()), model,
                                          InferOptions(tile=tile, overlap=overlap,
                                                       progress=False))
            out = handler.handle(str(path), str(tmp_path / f'out{tile}'))[0]
            results[tile] = (list(calls), cv2.imread(out, cv2.IMREAD_UNCHANGED))
    finally:
        hook.remove()
    assert results[None][0] == [(100, 120)]  # default tile 512: one tile
    assert len(results[40][0]) == TileGrid.build(100, 120, 40, 12).num_tiles > 4
    assert max(max(shape) for shape in results[40][0]) <= 40
    assert len(results[64][0]) == TileGrid.build(100, 120, 64, 20).num_tiles == 6
    for tile in (40, 64):  # overlap/4 covers the receptive field: equal within rounding
        assert np.abs(results[tile][1].astype(int) - results[None][1]).max() <= 1


def test_streaming_write_holds_bands_not_the_output(tmp_path: Path) -> None:
    """numpy allocations (traced by tracemalloc) while writing: bands, not the whole output."""
    model = _sr_model()
    photo = cv2.resize(data.coffee(), (300, 1600), interpolation=cv2.INTER_CUBIC)  # tall
    path = tmp_path / 'big.png'
    cv2.imwrite(str(path), photo[..., ::-1])
    output_bytes = 3200 * 600 * 3
    handler = restoration_handler(Config(dict()), model,
                                  InferOptions(tile=64, overlap=16, progress=False))
    image = read_image(str(path))
    pending = handler.predict([image])[0]
    tracemalloc.start()
    try:
        handler.write(str(path), image, pending, [str(tmp_path / 'big_x2.png')])
        streamed = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        whole = restore_array(model, image.rgb, 64, 16)
        held = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert held >= output_bytes  # the whole-array path holds it: the measure can see it
    assert streamed < output_bytes / 5  # a band of rows and the PNG writer's chunk
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'big_x2.png'))[..., ::-1], whole)


def test_failure_inside_write_leaves_no_file(tmp_path: Path) -> None:
    model = _sr_model()
    model.scale = 3  # the network upsamples x2: every tile's output has the wrong size
    path = tmp_path / 'photo.png'
    cv2.imwrite(str(path), data.astronaut()[:50, :60, ::-1])
    handler = restoration_handler(Config(dict()), model, InferOptions(progress=False))
    with pytest.raises(ValueError, match='expected'):
        handler.handle(str(path), str(tmp_path / 'out'))
    assert list((tmp_path / 'out').iterdir()) == []  # no output, no temporary file


def test_bad_arrays_are_refused() -> None:
    model = _sr_model()
    with pytest.raises(ValueError, match=r'rgb must be an \(H, W, 3\) uint8/uint16/float'):
        restore_array(model, np.zeros((8, 8, 3), np.int32))
    with pytest.raises(ValueError, match=r'rgb must be an \(H, W, 3\) uint8/uint16/float'):
        restore_array(model, np.zeros((8, 8), np.float32))
    with pytest.raises(TypeError, match='float tensor'):
        tiled_restore(model.restore, torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 2)


@pytest.mark.slow
def test_6000x4000_sr_file_peaks_under_600_mib() -> None:
    from benchmarks.restoration import file_peak_rss

    result = file_peak_rss(4000, 6000)
    assert result['peak_rss_mib'] < 600, result


def test_file_peak_rss_measures_a_fresh_process(tmp_path: Path) -> None:
    from benchmarks.restoration import file_peak_rss

    with pytest.raises(ValueError, match='height must be an int >= 64'):
        file_peak_rss(10, 100)
    with pytest.raises(ValueError, match='work_dir'):
        file_peak_rss(64, 96, keep_output=True)
    result = file_peak_rss(64, 96, work_dir=str(tmp_path), keep_output=True)
    assert result['baseline_rss_mib'] > 50 and result['peak_rss_mib'] >= 0
    assert cv2.imread(result['output']).shape == (128, 192, 3)
