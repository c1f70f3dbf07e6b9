"""Tiled inference equals whole-image inference once the overlap covers the receptive field."""
from __future__ import annotations

import pytest
import torch
from mmengine.registry import init_default_scope

from densekit.registry import MODELS
from densekit.tasks.restoration.tiling import TileGrid, axis_tiles, axis_weights, tiled_restore
from tests.restoration_threads import idle_threads  # noqa: F401

init_default_scope('densekit')


def test_spans_cover_overlap_and_weights_sum_to_one() -> None:
    for length, tile, overlap in ((1000, 512, 32), (4000, 512, 16), (129, 32, 8), (64, 64, 16)):
        spans = axis_tiles(length, tile, overlap)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(b - a <= max(tile, 1) for a, b in spans)
        assert all(spans[i][1] - spans[i + 1][0] >= overlap for i in range(len(spans) - 1))
        for scale in (1, 3):
            total = torch.zeros(length * scale, dtype=torch.float64)
            for i, (a, b) in enumerate(spans):
                total[a * scale:b * scale] += axis_weights(spans, i, scale).double()
            torch.testing.assert_close(total, torch.ones_like(total), atol=1e-6, rtol=0)
    grid = TileGrid.build(3000, 4000, 512, 16)
    assert grid.num_tiles == 63 and grid.processed_fraction() < 1.07
    with pytest.raises(ValueError, match='overlap'):
        axis_tiles(100, 32, 11)


def _model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == 'edsr':  # receptive-field radius: 6 LR 3x3 convs + 1 HR conv -> 7 LR pixels
        cfg = dict(type='Restorer', scale=2, backbone=dict(type='EDSRBody', channels=8,
                                                           num_blocks=2),
                   head=dict(type='PixelShuffleHead', in_channels=8, scale=2))
    else:  # SCNet: one pixel per shift plus the bilinear taps
        cfg = dict(type='Restorer', scale=3, backbone=dict(type='SCNetBody', channels=16,
                                                           num_blocks=3),
                   head=dict(type='ShiftUpsampleHead', in_channels=16, scale=3))
    model = MODELS.build(cfg).eval()
    for module in model.modules():  # SCNet starts near-identity; make its context matter
        if isinstance(module, torch.nn.Conv2d) and kind == 'scnet':
            torch.nn.init.normal_(module.weight, std=0.3)
    return model


@pytest.mark.parametrize('kind', ['edsr', 'scnet'])
def test_tiled_equals_whole_image(kind: str) -> None:
    model = _model(kind)
    image = torch.rand(1, 3, 170, 150)
    whole = model.restore(image, clamp=False)
    tiled = tiled_restore(lambda t: model.restore(t, clamp=False), image, model.scale, tile=96,
                          overlap=32)
    assert TileGrid.build(170, 150, 96, 32).num_tiles == 6
    assert (tiled - whole).abs().max().item() < 1e-4
    # too small an overlap leaves seams: the equality above is not vacuous
    seams = tiled_restore(lambda t: model.restore(t, clamp=False), image, model.scale, tile=96,
                          overlap=4)
    assert (seams - whole).abs().max().item() > 1e-3


def test_sink_streams_rows_in_order() -> None:
    model = _model('edsr')
    image = torch.rand(1, 3, 70, 40)
    rows = []
    result = tiled_restore(model.restore, image, 2, tile=32, overlap=8,
                           sink=lambda row, block: rows.append((row, block.shape[-2])))
    assert result is None
    assert [r for r, _ in rows] == [0, *[sum(n for _, n in rows[:i]) for i in range(1, len(rows))]]
    assert sum(n for _, n in rows) == 140
    with pytest.raises(ValueError, match='expected'):
        tiled_restore(lambda t: t, image, 2, tile=32, overlap=8)
