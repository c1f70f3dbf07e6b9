"""Built-in segmentation data: determinism, layout, classes by shape, mmseg reads it."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from densekit.tasks.segmentation import CLASSES, ShapesDataset, generate_shapes_dataset


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob('*.png')):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = generate_shapes_dataset(tmp_path / 'a', num_train=3, num_val=2, size=64, seed=1)
    b = generate_shapes_dataset(tmp_path / 'b', num_train=3, num_val=2, size=64, seed=1)
    c = generate_shapes_dataset(tmp_path / 'c', num_train=3, num_val=2, size=64, seed=2)
    assert _digest(a) == _digest(b) != _digest(c)


def test_layout_classes_and_overlap(shapes_root: Path) -> None:
    assert len(CLASSES) >= 6 and CLASSES[0] == 'background'
    labels = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
              for p in sorted((shapes_root / 'ann_dir' / 'train').glob('*.png'))]
    images = sorted((shapes_root / 'img_dir' / 'train').glob('*.png'))
    assert len(labels) == len(images) == 8
    assert all(lab.dtype == np.uint8 and lab.shape == (64, 64) for lab in labels)
    present = set(np.unique(np.concatenate([lab.ravel() for lab in labels])))
    assert present <= set(range(len(CLASSES))) and len(present) >= 4
    assert all(len(np.unique(lab)) >= 2 for lab in labels)


def test_colour_does_not_identify_the_class(tmp_path: Path) -> None:
    root = generate_shapes_dataset(tmp_path, num_train=40, num_val=1, size=64, seed=0)
    means: dict[int, list] = {}
    for lab_path in sorted((root / 'ann_dir' / 'train').glob('*.png')):
        lab = cv2.imread(str(lab_path), cv2.IMREAD_UNCHANGED)
        img = cv2.imread(str(root / 'img_dir' / 'train' / lab_path.name)).astype(float)
        for cls in np.unique(lab):
            if cls:
                means.setdefault(int(cls), []).append(img[lab == cls].mean(0))
    spread = [np.std(np.array(v), axis=0).mean() for v in means.values() if len(v) >= 4]
    assert len(spread) >= 4 and min(spread) > 25  # each class appears in many colours


def test_mmseg_dataset_reads_it(shapes_root: Path) -> None:
    ds = ShapesDataset(data_root=str(shapes_root),
                       data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
                       pipeline=[dict(type='LoadImageFromFile'),
                                 dict(type='mmseg.LoadAnnotations')])
    sample = ds[0]
    assert len(ds) == 4 and ds.metainfo['classes'] == CLASSES
    assert sample['img'].shape == (64, 64, 3) and sample['gt_seg_map'].shape == (64, 64)


@pytest.mark.parametrize('kwargs,match', [(dict(num_train=0), 'num_train'),
                                          (dict(size=8), 'size'), (dict(num_val='3'), 'num_val')])
def test_bad_generator_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate_shapes_dataset(tmp_path, **kwargs)


def test_label_of_wrong_size_names_both_files(shapes_root: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / 'broken'
    shutil.copytree(shapes_root, root)
    label = root / 'ann_dir' / 'val' / '00001.png'
    cv2.imwrite(str(label), np.zeros((32, 48), np.uint8))
    ds = ShapesDataset(data_root=str(root),
                       data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
                       pipeline=[dict(type='LoadImageFromFile'),
                                 dict(type='mmseg.LoadAnnotations'),
                                 dict(type='densekit.CheckLabelSize')])
    assert ds[0]['gt_seg_map'].shape == (64, 64)
    with pytest.raises(ValueError, match=r'00001\.png.* is 48x32 .*img_dir/val/00001\.png'):
        ds[1]
