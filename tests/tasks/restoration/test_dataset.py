"""Paired folders, paired transforms and the built-in photo data."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from densekit.tasks.restoration.dataset import PairedImageDataset
from densekit.tasks.restoration.imresize import imresize
from densekit.tasks.restoration.photos import generate_restoration_photos
from densekit.tasks.restoration.transforms import (
    AddRainStreaks,
    BicubicDegrade,
    LoadPairImages,
    PackRestorationInputs,
    PairedFlip,
    PairedRandomCrop,
    PairedRandomRot90,
)
from tests.restoration_threads import idle_threads  # noqa: F401


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)


def _pairs(root: Path, sizes: dict, scale: int = 2) -> None:
    for name, (h, w) in sizes.items():
        _write(root / 'GT' / name, np.zeros((h, w, 3), np.uint8))
        _write(root / 'LR' / name, np.zeros((h // scale, w // scale, 3), np.uint8))


def test_pairs_by_file_name_and_mod_crops(tmp_path: Path) -> None:
    _pairs(tmp_path, {'a.png': (20, 30), 'b.png': (21, 31)})  # b: one extra pixel, fits x2
    ds = PairedImageDataset(str(tmp_path), data_prefix=dict(gt='GT', lq='LR'), scale=2,
                            pipeline=[dict(type='densekit.LoadPairImages'),
                                      dict(type='densekit.PackRestorationInputs')])
    assert [Path(d['lq_path']).name for d in ds.data_list] == ['a.png', 'b.png']
    sample = ds[1]
    assert sample['inputs'].shape == (3, 10, 15)
    assert sample['data_samples'].gt_img.shape == (3, 20, 30)  # mod-cropped target
    assert sample['data_samples'].metainfo['max_value'] == 255.0


def test_missing_partner_and_size_mismatch_name_both_files(tmp_path: Path) -> None:
    _pairs(tmp_path, {'a.png': (20, 30)})
    _write(tmp_path / 'GT' / 'orphan.png', np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"GT/orphan.png'.*LR/orphan.png"):
        PairedImageDataset(str(tmp_path), data_prefix=dict(gt='GT', lq='LR'), scale=2)
    (tmp_path / 'GT' / 'orphan.png').unlink()
    _write(tmp_path / 'LR' / 'extra.png', np.zeros((5, 5, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"LR/extra.png'.*GT/extra.png"):
        PairedImageDataset(str(tmp_path), data_prefix=dict(gt='GT', lq='LR'), scale=2)
    (tmp_path / 'LR' / 'extra.png').unlink()
    with pytest.raises(ValueError, match=r"LR/a.png' is 10x15.*GT/a.png' is 20x30.*scale 3"):
        PairedImageDataset(str(tmp_path), data_prefix=dict(gt='GT', lq='LR'), scale=3)


def test_lq_template_maps_div2k_names(tmp_path: Path) -> None:
    _write(tmp_path / 'HR' / '0001.png', np.zeros((8, 8, 3), np.uint8))
    _write(tmp_path / 'X2' / '0001x2.png', np.zeros((4, 4, 3), np.uint8))
    ds = PairedImageDataset(str(tmp_path), data_prefix=dict(gt='HR', lq='X2'), scale=2,
                            lq_template='{}x2')
    assert Path(ds.data_list[0]['lq_path']).name == '0001x2.png'
    with pytest.raises(ValueError, match='lq_template'):
        PairedImageDataset(str(tmp_path), data_prefix=dict(gt='HR'), lq_template='x2')


def _coords(h: int, w: int) -> np.ndarray:
    """uint16 image whose pixels encode their coordinates (so crops can be located)."""
    yy, xx = np.mgrid[:h, :w]
    return np.stack([yy, xx, yy * 0], axis=2).astype(np.uint16)


def test_paired_crop_flip_rotate_stay_aligned() -> None:
    np.random.seed(0)
    gt = _coords(60, 81)
    for _ in range(10):
        results = dict(gt=gt, lq=gt[::3, ::3], scale=3)
        for transform in (PairedRandomCrop(24), PairedFlip(), PairedRandomRot90()):
            results = transform(results)
        lq, target = results['lq'], results['gt']
        assert lq.shape == (8, 8, 3) and target.shape == (24, 24, 3)
        # lq pixels are the top-left corners of the original 3x3 cells; after any crop, flip
        # or rotation each must still be the corner of the target cell at the same place
        cells = target.reshape(8, 3, 8, 3, 3)
        for channel in (0, 1):
            np.testing.assert_array_equal(lq[..., channel],
                                          cells[..., channel].min(axis=(1, 3)))
    with pytest.raises(ValueError, match='smaller than'):
        PairedRandomCrop(96)(dict(gt=gt, lq=gt[::3, ::3], scale=3, lq_path='x.png'))
    with pytest.raises(ValueError, match='multiple of the scale'):
        PairedRandomCrop(25)(dict(gt=gt, lq=gt[::3, ::3], scale=3))


def test_on_the_fly_degradations() -> None:
    gt = (np.random.default_rng(0).random((24, 36, 3)) * 255).astype(np.uint8)
    out = BicubicDegrade(3)(dict(gt=gt))
    np.testing.assert_array_equal(out['lq'], imresize(gt, 1 / 3))
    assert out['scale'] == 3
    np.random.seed(1)
    rain = AddRainStreaks('light', density=(0.01, 0.02), length=(9, 15))(dict(gt=gt))
    assert rain['lq'].shape == gt.shape and (rain['lq'] >= gt).all() and rain['scale'] == 1
    with pytest.raises(ValueError, match='density'):
        AddRainStreaks(density=(0.5, 0.1))
    with pytest.raises(ValueError, match='preset'):
        AddRainStreaks('storm')


def test_load_and_pack_keep_16_bit(tmp_path: Path) -> None:
    image = (np.arange(4 * 6 * 3).reshape(4, 6, 3) * 1000).astype(np.uint16)
    _write(tmp_path / 'deep.png', image[..., ::-1])
    results = LoadPairImages(keys=('gt',))(dict(gt_path=str(tmp_path / 'deep.png')))
    np.testing.assert_array_equal(results['gt'], image)
    assert results['max_value'] == 65535.0
    results['lq'] = results['gt']
    packed = PackRestorationInputs()(results)
    assert packed['inputs'].dtype.is_floating_point and packed['inputs'][0, 1, 2] == 1000 * 24


def test_builtin_photos_are_seeded_split_and_paired(tmp_path: Path) -> None:
    root = generate_restoration_photos(tmp_path / 'a', train=('page',), val=('microaneurysms',))
    again = generate_restoration_photos(tmp_path / 'b', train=('page',), val=('microaneurysms',))
    meta = json.loads((root / 'meta.json').read_text())
    assert meta['train'] == ['page'] and meta['val'] == ['microaneurysms']
    for rel in ('train/GT/page.png', 'train/LRx3/page.png', 'val/rain_heavy/microaneurysms.png'):
        assert (root / rel).read_bytes() == (again / rel).read_bytes()
    gt = cv2.imread(str(root / 'train/GT/page.png'))
    assert gt.shape[0] % 12 == 0 and gt.shape[1] % 12 == 0
    lr4 = cv2.imread(str(root / 'train/LRx4/page.png'))
    np.testing.assert_array_equal(lr4[..., ::-1], imresize(gt[..., ::-1], 0.25))
    ds = PairedImageDataset(str(root), data_prefix=dict(gt='val/GT', lq='val/LRx2'), scale=2)
    assert len(ds) == 1
    with pytest.raises(ValueError, match='both train and val'):
        generate_restoration_photos(tmp_path / 'c', train=('page',), val=('page',))
