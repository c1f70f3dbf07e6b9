"""RC-LUT: the tables reproduce the network up to the method's quantisation (bounds derived in
densekit/tasks/restoration/lut.py), storage, persistence and build-time errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from densekit.backbones.rclut import RCLUTBody, quantize_input
from densekit.errors import ArgumentError
from densekit.heads.shuffle_head import PixelShuffleSkipHead
from densekit.registry import MODELS
from densekit.tasks.restoration.color import rgb2ycbcr
from densekit.tasks.restoration.lut import (
    LUTModel,
    convert_to_luts,
    sample_codes,
    simplex_interpolate,
    unit_error_bound,
)


def _restorer(rotations: int = 4, skip: str = 'bicubic') -> torch.nn.Module:
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='densekit.Restorer', scale=2, luma_only=True,
        backbone=dict(type='densekit.RCLUTBody', scale=2, rc_size=5, rc_features=8,
                      rc_act=dict(type='GELU'), unit_features=16, dense_layers=2,
                      rotations=rotations),
        head=dict(type='densekit.PixelShuffleSkipHead', scale=2, input_skip=skip)))
    unit = model.backbone.unit
    with torch.no_grad():  # smooth unit (tight cell bounds), sub-pixels far apart (layout)
        unit.out.conv.weight.normal_(0, 4e-3)
        unit.out.conv.bias.copy_(torch.tensor([-0.6, -0.2, 0.25, 0.7]))
    return model.eval()


@pytest.fixture(scope='module')
def photo_luma() -> torch.Tensor:
    from skimage import data

    rgb = torch.from_numpy(data.astronaut()[100:164, 150:230].astype(np.float32) / 255)
    return rgb2ycbcr(rgb.permute(2, 0, 1)[None])[:, :1]       # (1, 1, 64, 80), a real photo


def test_rc_tables_give_the_network_codes(photo_luma: torch.Tensor) -> None:
    model = _restorer()
    lut = convert_to_luts(model)
    codes = quantize_input(photo_luma)
    n = lut.rc_size
    for k in range(4):
        rotated = torch.nn.functional.pad(torch.rot90(codes, k, (2, 3)), (0, n, 0, n),
                                          mode='replicate')
        with torch.no_grad():
            net = model.backbone.rc(rotated)[0, 0].numpy().astype(np.int64)
        table = lut.rc_codes(rotated[0, 0].numpy().astype(np.uint8)).astype(np.int64)
        diff = np.abs(net - table)
        # equal up to float ties at a rounding boundary, where one code apart
        assert diff.max() <= 1 and (diff > 0).mean() <= 1e-3
        assert len(np.unique(net)) > 20  # the photo spans many codes


def test_unit_table_equals_the_network_at_sample_codes() -> None:
    model = _restorer()
    lut = convert_to_luts(model)
    grid = sample_codes()
    quads = grid[np.random.default_rng(0).integers(0, len(grid), (500, 4))]
    with torch.no_grad():
        net = torch.round(model.backbone.unit(
            torch.from_numpy(quads).double().float().view(-1, 1, 2, 2)) * 127)
    got = simplex_interpolate(lut.unit_table, quads)
    np.testing.assert_array_equal(got, net.view(-1, 4).numpy())


def test_simplex_interpolation_is_exact_for_affine_functions() -> None:
    grid = sample_codes().astype(np.float64)
    coef, offset = np.array([0.3, -1.1, 0.7, 0.45]), 2.0
    a, b, c, d = np.meshgrid(grid, grid, grid, grid, indexing='ij')
    table = (coef[0] * a + coef[1] * b + coef[2] * c + coef[3] * d + offset)[..., None]
    codes = np.random.default_rng(1).integers(0, 256, (2000, 4))
    codes[:5] = [[255, 255, 255, 255], [0, 0, 0, 0], [241, 7, 255, 130], [15, 16, 17, 254],
                 [255, 0, 128, 1]]
    got = simplex_interpolate(table, codes)[:, 0]
    want = codes @ coef + offset
    # float32 weights and products: relative error a few float32 ulps of values up to ~400
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * 400 * 8)
    # a nonlinear function is not reproduced (the check can fail)
    assert np.abs(simplex_interpolate(table ** 2, codes)[:, 0] - want ** 2).max() > 1


def test_interpolation_error_within_the_derived_cell_bound() -> None:
    model = _restorer()
    lut = convert_to_luts(model)
    bound = unit_error_bound(model)
    quads = np.random.default_rng(2).integers(0, 256, (4000, 4))
    with torch.no_grad():
        net = torch.round(model.backbone.unit(
            torch.from_numpy(quads).float().view(-1, 1, 2, 2)) * 127).view(-1, 4).numpy()
    err = np.abs(simplex_interpolate(lut.unit_table, quads) - net)
    cell = np.minimum(quads // 16, 15)
    allowed = bound[cell[:, 0], cell[:, 1], cell[:, 2], cell[:, 3]]
    assert (err <= allowed + 1e-4).all()
    assert err.max() > 0  # off-grid points are interpolated, not looked up


@pytest.mark.parametrize('rotations', [4, 1])
def test_table_inference_matches_the_network(photo_luma: torch.Tensor, rotations: int) -> None:
    model = _restorer(rotations)
    lut = convert_to_luts(model)
    with torch.no_grad():
        net = model.head(model.backbone(photo_luma), photo_luma)[0, 0].numpy()
    got = lut.upscale_luma(photo_luma[0, 0].numpy())
    assert got.shape == net.shape == (128, 160)
    # per rotation: <= B codes (cell bound B) with equal RC codes; an RC code one off moves the
    # unit's input into at most the neighbouring cell: <= 3B. Averaged over rotations, / 127.
    worst = float(unit_error_bound(model).max())
    err = np.abs(got - net)
    assert err.max() <= 3 * worst / 127 + 1e-5
    assert worst <= 8  # the smooth test unit keeps the bound tight: a layout bug would not pass
    if rotations == 1:  # (four rotations give each position every sub-pixel channel once)
        # sub-pixel residuals differ by ~1 (biases); a shuffled layout would be off by that much
        residual = lut.residual(photo_luma[0, 0].numpy())
        assert residual[1::2, 1::2].mean() - residual[0::2, 0::2].mean() > 0.9


def test_storage_save_load(tmp_path: Path, photo_luma: torch.Tensor) -> None:
    model = _restorer()
    lut = convert_to_luts(model)
    assert lut.nbytes == 25 * 256 * 4 + 17 ** 4 * 4 == 359_684
    path = lut.save(tmp_path / 'sub' / 'rclut.npz')
    assert sorted(p.name for p in path.parent.iterdir()) == ['rclut.npz']  # no temp file left
    back = LUTModel.load(path)
    assert (back.scale, back.rc_size, back.rotations, back.input_skip) == (2, 5, 4, 'bicubic')
    np.testing.assert_array_equal(back.unit_table, lut.unit_table)
    y = photo_luma[0, 0].numpy()
    np.testing.assert_array_equal(back.upscale_luma(y), lut.upscale_luma(y))


def test_restore_rgb_is_luma_tables_plus_bicubic_chroma() -> None:
    model = _restorer()
    lut = convert_to_luts(model)
    rgb = (np.random.default_rng(3).random((20, 24, 3)) * 255).astype(np.uint8)
    with torch.no_grad():
        want = model.restore(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)
    want = (want[0].permute(1, 2, 0) * 255).round().numpy()
    got = lut.restore_rgb(rgb).astype(np.float64)
    assert np.abs(got - want).max() <= 3 * float(unit_error_bound(model).max()) / 127 * 255 * 1.5


def test_convert_rejects_other_networks() -> None:
    fsrcnn = MODELS.build(dict(
        type='densekit.Restorer', scale=2, luma_only=True,
        backbone=dict(type='densekit.FSRCNNBody', d=8, s=4, m=1),
        head=dict(type='densekit.DeconvHead', in_channels=8, scale=2, out_channels=1)))
    with pytest.raises(TypeError, match='RCLUTBody'):
        convert_to_luts(fsrcnn)


@pytest.mark.parametrize('kwargs, match', [
    (dict(rc_size=0), 'rc_size'), (dict(rotations=3), 'rotations'),
    (dict(unit_features=0), 'unit_features'), (dict(dense_layers=-1), 'dense_layers'),
    (dict(rc_act='relu'), 'rc_act'), (dict(scale=0), 'scale')])
def test_body_arguments_are_validated(kwargs: dict, match: str) -> None:
    with pytest.raises(ArgumentError, match=match):
        RCLUTBody(**kwargs)


def test_head_arguments_and_shapes_are_validated() -> None:
    with pytest.raises(ArgumentError, match='input_skip'):
        PixelShuffleSkipHead(2, input_skip='nearest')
    with pytest.raises(ValueError, match='C \\* 4'):
        PixelShuffleSkipHead(2)(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match='RCLUTBody expects'):
        RCLUTBody(rc_size=3, rc_features=2, unit_features=4)(torch.zeros(1, 3, 8, 8))


def test_benchmark_row_times_tables_against_fsrcnn() -> None:
    from benchmarks.restoration import lut_vs_fsrcnn

    row = lut_vs_fsrcnn(repeats=1, quick=True)
    assert row.densekit_s > 0 and row.peer_s and row.peer_s > 0
    assert row.extra['table bytes'] == '359684'  # 5x5 RC (25 x 256 float32) + 17^4 x 4 int8
    assert float(row.extra['MP/s out tables']) == pytest.approx(96 * 128 * 4 / 1e6 / row.densekit_s,
                                                                rel=1e-2)


@pytest.mark.slow
def test_network_and_tables_beat_bicubic_on_held_out_photos(tmp_path: Path) -> None:
    """The README gate: 240 s of CPU training, PSNR-Y (crop_border = scale) on held-out photos."""
    from densekit.apis import load_config, parse_cfg_options, train
    from densekit.tasks.restoration.demo import evaluate_photos
    from densekit.tasks.restoration.imresize import imresize
    from densekit.tasks.restoration.metrics import psnr
    from densekit.tasks.restoration.photos import generate_restoration_photos
    from densekit.tasks.restoration.transforms import read_rgb

    repo = Path(__file__).resolve().parents[2]
    root = generate_restoration_photos(repo / 'data' / 'restoration' / 'photos')
    opts = [f'{loader}.dataset.data_root={root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    cfg = load_config(str(repo / 'configs/restoration/rclut_x2_1xb4-4min_photos.py'),
                      parse_cfg_options(opts), str(tmp_path))
    torch.manual_seed(0)
    runner = train(cfg)
    data = runner.val_dataloader.dataset.data_list
    scores = evaluate_photos(runner.model, data, 2, tmp_path / 'pictures')
    lut = convert_to_luts(runner.model)
    lut_psnr, base_psnr = [], []
    for info in data:
        lq, gt = read_rgb(info['lq_path']), read_rgb(info['gt_path'])
        gt = gt[:lq.shape[0] * 2, :lq.shape[1] * 2]
        lut_psnr.append(psnr(lut.restore_rgb(lq), gt, 2, 'y'))
        base_psnr.append(psnr(imresize(lq, 2), gt, 2, 'y'))
    print(f'RC-LUT x2 after {runner.iter} iters: network {scores["out"]:.2f}, tables '
          f'{np.mean(lut_psnr):.2f}, bicubic {scores["base"]:.2f} dB PSNR-Y')
    assert scores['out'] > scores['base'] and np.mean(lut_psnr) > np.mean(base_psnr)


def test_rotate90_is_rot90() -> None:
    from densekit.backbones.rclut import rotate90

    x = torch.rand(2, 1, 5, 7)
    for k in range(-4, 5):
        assert torch.equal(rotate90(x, k), torch.rot90(x, k, dims=(2, 3)))
