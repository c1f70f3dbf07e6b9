"""The windowed engine's cross-faded layouts: streamed slabs, per-axis output scales, and tiled
super-resolution (``tiled_restore`` runs on the engine) against whole-image outputs."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import densekit.windowed as windowed
from densekit.registry import MODELS
from densekit.tasks.restoration.tiling import TileGrid, axis_weights, tiled_restore
from densekit.windowed.blend import Blender, FullSink
from densekit.windowed.grid import crossfade_layout, tile_spans

init_default_scope('densekit')
CONFIGS = Path(__file__).parents[2] / 'configs' / 'restoration'


def _fsrcnn() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = Config.fromfile(str(CONFIGS / 'fsrcnn_x2d56s12m4_1xb4-4min_photos.py'))
    return MODELS.build(cfg.model).eval().double()


def _blend_by_definition(fn, image: torch.Tensor, scale: int, tile: int, overlap: int
                         ) -> torch.Tensor:
    """sum over tiles of (row fade x column fade) * tile output, divided by the summed fades:
    the cross-fade written out directly, in float64."""
    grid = TileGrid.build(*image.shape[-2:], tile, overlap)
    out = None
    total = torch.zeros(image.shape[-2] * scale, image.shape[-1] * scale, dtype=torch.float64)
    for i, (y0, y1) in enumerate(grid.rows):
        for j, (x0, x1) in enumerate(grid.cols):
            piece = fn(image[..., y0:y1, x0:x1])
            # the layout's weights: the float32 product of the float32 fades
            w = (axis_weights(grid.rows, i, scale)[:, None]
                 * axis_weights(grid.cols, j, scale)).double()
            if out is None:
                out = torch.zeros(*piece.shape[:2], *total.shape, dtype=torch.float64)
            out[..., y0 * scale:y1 * scale, x0 * scale:x1 * scale] += piece * w
            total[y0 * scale:y1 * scale, x0 * scale:x1 * scale] += w
    return out / total


def test_fsrcnn_tiled_equals_whole_image_in_float64_at_an_odd_size() -> None:
    model = _fsrcnn()
    torch.manual_seed(1)
    image = torch.rand(1, 3, 97, 131, dtype=torch.float64)

    def fn(t: torch.Tensor) -> torch.Tensor:
        return model.restore(t, clamp=False)

    whole = fn(image)
    # FSRCNN's receptive-field radius is under 8 input pixels, so overlap 32 (a quarter: 8)
    # covers it: the tiles give the whole-image output up to float64 rounding
    tiled = tiled_restore(fn, image, 2, tile=96, overlap=32, dtype=torch.float64)
    assert TileGrid.build(97, 131, 96, 32).num_tiles == 4
    assert tiled.dtype == torch.float64 and tiled.shape == whole.shape
    assert (tiled - whole).abs().max().item() < 1e-10
    # with a small overlap the seams differ from the whole image, and the engine still gives
    # exactly the cross-fade's definition
    seams = tiled_restore(fn, image, 2, tile=48, overlap=16, dtype=torch.float64)
    assert (seams - whole).abs().max().item() > 1e-4
    reference = _blend_by_definition(fn, image, 2, 48, 16)
    assert (seams - reference).abs().max().item() < 1e-12


def test_a_batch_is_blended_like_its_images_one_at_a_time() -> None:
    model = _fsrcnn()
    images = torch.rand(2, 3, 61, 75, dtype=torch.float64)

    def fn(t: torch.Tensor) -> torch.Tensor:
        return model.restore(t, clamp=False)

    batch = tiled_restore(fn, images, 2, tile=36, overlap=12, dtype=torch.float64)
    for k in range(2):
        alone = tiled_restore(fn, images[k:k + 1], 2, tile=36, overlap=12, dtype=torch.float64)
        assert (batch[k:k + 1] - alone).abs().max().item() < 1e-12


def test_per_axis_output_scale_in_3d_streams_the_whole_volume_output() -> None:
    """A 3D network whose output is 2x deeper and 3x wider than its input window: the engine's
    cross-faded layout with scale (2, 1, 3) reproduces the whole-volume output, slab by slab."""
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(2, 3, 3, padding=1).double().eval()

    def net(x: torch.Tensor) -> torch.Tensor:
        y = conv(x)
        return y.repeat_interleave(2, dim=2).repeat_interleave(3, dim=4)

    volume = torch.rand(1, 2, 29, 23, 31, dtype=torch.float64)
    whole = net(volume)
    roi, layout = crossfade_layout(volume.shape[2:], 16, 5, scale=(2, 1, 3))
    assert all(len(starts) >= 2 for starts in layout.starts)
    slabs = []
    windowed.stream_windows(volume, roi, net, layout,
                            lambda b, row, rows: slabs.append((b, row, rows)),
                            dtype=torch.float64)
    rows = [row for _, row, _ in slabs]
    assert rows == sorted(rows) and rows[0] == 0
    assert all(r1 == r0 + block.shape[1]
               for (_, r0, block), (_, r1, _) in zip(slabs, slabs[1:]))
    out = torch.cat([block for _, _, block in slabs], dim=1)[None]
    assert out.shape == whole.shape
    # a quarter of the 5-pixel overlap (1.25) covers the 3x3x3 conv's radius of 1
    assert (out - whole).abs().max().item() < 1e-12


def test_layout_and_stream_arguments_are_checked() -> None:
    volume = torch.rand(1, 1, 20, 20)
    roi, layout = crossfade_layout((20, 20), 12, 4)
    with pytest.raises(ValueError, match='scale'):
        crossfade_layout((20, 20), 12, 4, scale=(2,))
    with pytest.raises(ValueError, match='roi'):
        windowed.stream_windows(volume, (30, 12), lambda w: w, layout, print)
    bad = windowed.WindowLayout(((8, 0), (0,)), layout.weights)
    with pytest.raises(ValueError, match='ascending'):
        windowed.stream_windows(volume, (12, 20), lambda w: w, bad, print)
    with pytest.raises(ValueError, match='roi'):
        windowed.stream_windows(volume, (12.5, 20), lambda w: w, layout, print)
    floats = windowed.WindowLayout(((0.0, 8.0), (0,)), layout.weights)
    with pytest.raises(ValueError, match='ascending'):
        windowed.stream_windows(volume, (12, 20), lambda w: w, floats, print)
    with pytest.raises(TypeError, match='inputs'):
        windowed.stream_windows(volume.numpy(), (12, 20), lambda w: w, layout, print)
    with pytest.raises(ValueError, match='align'):
        tile_spans(100, 32, 8, align=0)
    assert tile_spans(20, 12, 4) == [(0, 12), (8, 20)]


def test_a_predictor_that_changes_its_output_size_is_refused() -> None:
    blender = Blender(FullSink(), batch=1, size=(8,), roi=(4,), axis0_starts=[0, 4],
                      device=torch.device('cpu'), dtype=torch.float32)
    weights = torch.ones(4)
    blender.add([(0, (0,))], [torch.ones(1, 1, 4)], weights)
    with pytest.raises(ValueError, match='first windows were'):
        blender.add([(0, (4,))], [torch.ones(1, 1, 8)], weights)


def test_old_import_paths_name_the_engine() -> None:
    from densekit.tasks.medical3d import batching, blend, sliding_window, windows

    assert sliding_window.sliding_window_inference is windowed.sliding_window_inference
    assert sliding_window.sliding_window_labels is windowed.sliding_window_labels
    assert windows.importance_map is windowed.importance_map
    assert blend.LabelSink is windowed.LabelSink
    assert batching.independent_samples is windowed.independent_samples
