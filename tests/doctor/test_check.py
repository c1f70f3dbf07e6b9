"""`densekit check-data`: each kind of dataset mistake, put into a copy of the built-in data of
every task, is found and named (code + file); clean data passes; the JSON report equals the
screen; nibabel's 4D example given as a label map is refused."""
from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

from densekit.cli import main
from densekit.tasks.segmentation.synthetic import PALETTE
from tests.conftest import REPO, run_tool

SEG = REPO / 'configs/segmentation/fpn_r18-tiny_1xb8-2000i_shapes-128x128.py'
DET = REPO / 'configs/detection/retinanet_r18-half_fpn_1xb8-2000i_shapes-160x160.py'
MED = REPO / 'configs/medical3d/resunet-tiny_1xb2-600i_phantoms-48x48x48.py'
SR = REPO / 'configs/restoration/edsr_x2c32b8_1xb4-4min_photos.py'
LINE = re.compile(r'^(error|warning) +([A-Z0-9_]+) +(.+?): (.*)$')


@pytest.fixture(scope='module')
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from densekit.tasks.detection.synthetic import generate_detection_dataset
    from densekit.tasks.medical3d.phantoms import generate_phantoms
    from densekit.tasks.restoration.photos import generate_restoration_photos
    from densekit.tasks.segmentation.synthetic import generate_shapes_dataset

    base = tmp_path_factory.mktemp('built')
    return dict(
        seg=generate_shapes_dataset(base / 'shapes', num_train=8, num_val=2, size=64, seed=3),
        det=generate_detection_dataset(base / 'coco', num_train=6, num_val=1, size=64, seed=1),
        med=generate_phantoms(base / 'ph', num_train=4, num_val=1, num_test=0,
                              fov_mm=(40.0, 56.0, 56.0)),
        sr=generate_restoration_photos(base / 'photos', train=('page', 'coins', 'camera'),
                                       val=('moon',)))


def _copy(built: dict, kind: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built[kind], tmp_path / kind))


def _check(capsys: pytest.CaptureFixture, config: Path, root: Path, tmp_path: Path,
           *extra: str, options: tuple = ()) -> tuple:
    """Run check-data in-process: (exit status, [(severity, code, file, message)], report)."""
    out = tmp_path / 'report.json'
    rc = main(['check-data', str(config), '--workers', '2', '--no-progress', '--out', str(out),
               *extra, '--cfg-options', f'train_dataloader.dataset.data_root={root}', *options])
    screen = capsys.readouterr().out
    found = [m.groups() for m in map(LINE.match, screen.splitlines()) if m]
    report = json.loads(out.read_text())
    assert found == [(f['severity'], f['code'], f['file'], f['message'])
                     for f in report['findings']], screen
    assert rc == (1 if report['errors'] else 0) and report['errors'] == sum(
        f[0] == 'error' for f in found)
    return rc, found, report


def _codes(found: list) -> set:
    return {(code, file) for _, code, file, _ in found}


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize('kind,config', [('seg', SEG), ('det', DET), ('med', MED), ('sr', SR)])
def test_clean_builtin_data_passes(built: dict, kind: str, config: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    rc, found, report = _check(capsys, config, built[kind], tmp_path)
    assert rc == 0 and not [f for f in found if f[0] == 'error'], found
    assert report['files'] > 0 and report['files_per_second'] > 0 and report['tables']


def test_segmentation_mistakes_all_found_at_once(built: dict, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    root = _copy(built, 'seg', tmp_path)
    ann, img = root / 'ann_dir/train', root / 'img_dir/train'
    label = cv2.imread(str(ann / '00000.png'), cv2.IMREAD_UNCHANGED)
    label[:3, :5] = 9  # 15 px outside 0..6
    cv2.imwrite(str(ann / '00000.png'), label)
    index = cv2.imread(str(ann / '00002.png'), cv2.IMREAD_UNCHANGED)
    colour = np.asarray(PALETTE, np.uint8)[index]  # RGB colour mask
    cv2.imwrite(str(ann / '00002.png'), colour[..., ::-1])
    (ann / '00003.png').unlink()  # image without label
    (img / '00004.png').unlink()  # label without image
    small = cv2.imread(str(ann / '00005.png'), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(ann / '00005.png'), small[:32, :32])
    _truncate(img / '00006.png')
    _truncate(ann / '00007.png')
    fixed = tmp_path / 'fixed'
    rc, found, report = _check(capsys, SEG, root, tmp_path, '--fix-palette', str(fixed))
    assert rc == 1
    expected = {('LABEL_OUT_OF_RANGE', 'ann_dir/train/00000.png'),
                ('RGB_MASK', 'ann_dir/train/00002.png'),
                ('LABEL_MISSING', 'ann_dir/train/00003.png'),
                ('IMAGE_MISSING', 'ann_dir/train/00004.png'),
                ('SIZE_MISMATCH', 'ann_dir/train/00005.png'),
                ('IMAGE_UNREADABLE', 'img_dir/train/00006.png'),
                ('LABEL_UNREADABLE', 'ann_dir/train/00007.png')}
    assert expected <= _codes(found), found
    message = {f[1]: f[3] for f in found}
    assert '9 (15 px)' in message['LABEL_OUT_OF_RANGE']
    assert '--fix-palette' in message['RGB_MASK'] and '(0,0,0)' in message['RGB_MASK']
    # the palette conversion gives back the index mask; the colour input is untouched
    np.testing.assert_array_equal(cv2.imread(str(fixed / '00002.png'), cv2.IMREAD_UNCHANGED),
                                  index)
    assert cv2.imread(str(ann / '00002.png')).ndim == 3 and report['stats']['fix_palette'][
        'written'] == 1


def test_binary_0_255_masks_and_reduce_zero_label_hint(built: dict, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    binary = _copy(built, 'seg', tmp_path / 'a')
    shifted = _copy(built, 'seg', tmp_path / 'b')
    for path in sorted((binary / 'ann_dir/train').glob('*.png')):
        label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(path), np.where(label > 0, 255, 0).astype(np.uint8))
        label = cv2.imread(str(shifted / 'ann_dir/train' / path.name), cv2.IMREAD_UNCHANGED)
        # 0 stays "unlabelled", classes 1..6 become 2..7 (ADE-style 1-based classes)
        cv2.imwrite(str(shifted / 'ann_dir/train' / path.name),
                    np.where(label > 0, label + 1, 0).astype(np.uint8))
    rc, found, _ = _check(capsys, SEG, binary, tmp_path)
    assert rc == 1 and ('BINARY_MASK_0_255', 'ann_dir/train') in _codes(found), found
    assert 'label // 255' in {f[1]: f[3] for f in found}['BINARY_MASK_0_255']
    rc, found, _ = _check(capsys, SEG, shifted, tmp_path)
    assert rc == 1 and {('REDUCE_ZERO_LABEL_HINT', 'ann_dir/train'),
                        ('CLASS_ABSENT', 'ann_dir/train')} <= _codes(found), found
    assert 'reduce_zero_label=True' in {f[1]: f[3] for f in found}['REDUCE_ZERO_LABEL_HINT']


def test_warnings_alone_do_not_fail(built: dict, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    root = _copy(built, 'seg', tmp_path)
    for path in (root / 'ann_dir/train').glob('*.png'):
        label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        label[label == 5] = 0  # no ring anywhere
        if path.name == '00000.png':
            label = np.where(label > 0, 255, 0).astype(np.uint8)  # one 0/255 mask among many
        cv2.imwrite(str(path), label)
    rc, found, _ = _check(capsys, SEG, root, tmp_path)
    assert rc == 0 and {f[0] for f in found} == {'warning'}, found
    assert ('BINARY_MASK_0_255', 'ann_dir/train/00000.png') in _codes(found)
    assert any(f[1] == 'CLASS_ABSENT' and "'ring'" in f[3] for f in found), found


def test_detection_reports_every_annotation_error(built: dict, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    from densekit.tasks.detection import ShapesCocoDataset

    root = _copy(built, 'det', tmp_path)
    ann_path = root / 'annotations/instances_train.json'
    coco = json.loads(ann_path.read_text())
    anns = coco['annotations']
    anns[0]['bbox'] = [60, 10, 20, 10]  # outside the 64x64 image
    anns[1]['bbox'] = [10, 10, -4, 10]
    anns[2]['category_id'] = 42
    anns.append(dict(anns[3]))  # duplicate id
    anns.append(dict(anns[4], id=10_000, image_id=777))
    coco['annotations'] = [a for a in anns if a['image_id'] != 5]  # image 5: no boxes
    coco['images'][4]['width'] = 80  # the file is 64 wide
    (root / 'images/train/00003.png').unlink()
    ann_path.write_text(json.dumps(coco))
    with pytest.raises(ValueError, match='outside'):  # the dataset class stops at the first
        ShapesCocoDataset(data_root=str(root), ann_file='annotations/instances_train.json',
                          data_prefix=dict(img='images/train/'))
    rc, found, report = _check(capsys, DET, root, tmp_path)
    where = 'annotations/instances_train.json'
    assert rc == 1 and {('BOX_OUTSIDE_IMAGE', where), ('BOX_INVALID', where),
                        ('CATEGORY_UNKNOWN', where), ('DUPLICATE_ANN_ID', where),
                        ('ANN_IMAGE_UNKNOWN', where),
                        ('NO_BOXES', 'images/train/00005.png'),
                        ('IMAGE_MISSING', 'images/train/00003.png'),
                        ('IMAGE_SIZE_MISMATCH', 'images/train/00004.png')} <= _codes(found), found
    messages = ' '.join(f[3] for f in found)
    assert f"annotation id {anns[0]['id']} " in messages and 'category_id 42' in messages
    assert report['stats']['boxes'] > 0 and len(report['stats']['classes']) == 6


def test_detection_classes_not_passed(built: dict, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    rc, found, _ = _check(capsys, DET, built['det'], tmp_path,
                          options=('train_dataloader.dataset.metainfo.classes='
                                   '(disc,square,hexagon)',))
    codes = {code for _, code, _, _ in found}
    assert rc == 1 and {'CATEGORY_NOT_IN_CLASSES', 'CLASS_NOT_IN_CATEGORIES',
                        'MODEL_NUM_CLASSES'} <= codes, found
    assert sum(code == 'CATEGORY_NOT_IN_CLASSES' for _, code, _, _ in found) == 4


def _rewrite_nifti(path: Path, edit) -> None:
    img = nib.load(str(path))
    data, affine = edit(np.asarray(img.dataobj).copy(), img.affine.copy())
    out = nib.Nifti1Image(data, affine, img.header)
    path.write_bytes(gzip.compress(out.to_bytes()))


def test_medical_mistakes(built: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _copy(built, 'med', tmp_path)
    _rewrite_nifti(root / 'labelsTr/phantom_000.nii.gz',
                   lambda d, a: (np.where(d == 2, 5, d).astype(d.dtype), a))
    (root / 'imagesTr/phantom_001_0001.nii.gz').unlink()

    def shift(d: np.ndarray, a: np.ndarray) -> tuple:
        a[:3, 3] += 5.0
        return d, a
    _rewrite_nifti(root / 'labelsTr/phantom_002.nii.gz', shift)
    _rewrite_nifti(root / 'imagesTr/phantom_003_0000.nii.gz',
                   lambda d, a: (np.where(d > 800, np.nan, d).astype(np.float32), a))
    _truncate(root / 'imagesTr/phantom_003_0001.nii.gz')
    rc, found, report = _check(capsys, MED, root, tmp_path)
    assert rc == 1 and {('LABEL_VALUE_UNKNOWN', 'labelsTr/phantom_000.nii.gz'),
                        ('MODALITY_MISSING', 'imagesTr/phantom_001_0001.nii.gz'),
                        ('LABEL_AFFINE_MISMATCH', 'labelsTr/phantom_002.nii.gz'),
                        ('IMAGE_NOT_FINITE', 'imagesTr/phantom_003_0000.nii.gz'),
                        ('IMAGE_UNREADABLE', 'imagesTr/phantom_003_0001.nii.gz')
                        } <= _codes(found), found
    assert '5 (' in {f[1]: f[3] for f in found}['LABEL_VALUE_UNKNOWN']
    table = report['tables']['cases (first channel)']
    assert table['headers'][3:5] == ['spacing (mm)', 'orientation'] and len(table['rows']) == 4


def test_nibabel_example4d_as_label(built: dict, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    from nibabel.testing import data_path

    root = _copy(built, 'med', tmp_path)
    shutil.copy(os.path.join(data_path, 'example4d.nii.gz'),
                root / 'labelsTr/phantom_000.nii.gz')
    rc, found, _ = _check(capsys, MED, root, tmp_path)
    assert rc == 1 and {('LABEL_NOT_3D', 'labelsTr/phantom_000.nii.gz'),
                        ('LABEL_SHAPE_MISMATCH', 'labelsTr/phantom_000.nii.gz')
                        } <= _codes(found), found
    assert '(128, 96, 24, 2)' in {f[1]: f[3] for f in found}['LABEL_NOT_3D']


def test_restoration_pairs_and_scale(built: dict, tmp_path: Path) -> None:
    root = _copy(built, 'sr', tmp_path)
    lr, gt = root / 'train/LRx2', root / 'train/GT'
    (lr / 'page.png').unlink()
    shutil.copy(lr / 'coins.png', lr / 'ghost.png')
    coins = cv2.imread(str(lr / 'coins.png'))
    cv2.imwrite(str(lr / 'coins.png'), coins[:-3])
    _truncate(gt / 'camera.png')
    out = tmp_path / 'sr.json'
    # the tools script, in a fresh process: exit status 1 and the same findings in the JSON
    proc = run_tool(['tools/check_data.py', str(SR), '--workers', '2', '--out', str(out),
                     '--cfg-options', f'train_dataloader.dataset.data_root={root}'])
    found = [m.groups() for m in map(LINE.match, proc.stdout.splitlines()) if m]
    report = json.loads(out.read_text())
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert found == [(f['severity'], f['code'], f['file'], f['message'])
                     for f in report['findings']]
    assert {('LQ_MISSING', 'train/GT/page.png'), ('GT_MISSING', 'train/LRx2/ghost.png'),
            ('SCALE_MISMATCH', 'train/LRx2/coins.png'),
            ('IMAGE_UNREADABLE', 'train/GT/camera.png')} <= _codes(found), found


def test_bad_arguments_are_one_line_errors(built: dict, capsys: pytest.CaptureFixture) -> None:
    assert main(['check-data', str(SEG), '--workers', '0']) == 2
    assert 'workers must be a positive int, got 0' in capsys.readouterr().err
    assert main(['check-data', str(SR), '--fix-palette', 'x', '--cfg-options',
                 f"train_dataloader.dataset.data_root={built['sr']}"]) == 2
    assert '--fix-palette is for segmentation' in capsys.readouterr().err


def test_label_encoding_mistakes(built: dict, tmp_path: Path,
                                 capsys: pytest.CaptureFixture) -> None:
    root = _copy(built, 'seg', tmp_path)
    ann = root / 'ann_dir/train'
    gray = cv2.imread(str(ann / '00000.png'), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(ann / '00000.png'), np.repeat(gray[..., None], 3, axis=2))  # 3 equal channels
    wide = cv2.imread(str(ann / '00001.png'), cv2.IMREAD_UNCHANGED).astype(np.uint16)
    wide[0, :4] = 300  # 16-bit PNG: 300 wraps to 44 in mmseg's uint8 cast
    cv2.imwrite(str(ann / '00001.png'), wide)
    rc, found, _ = _check(capsys, SEG, root, tmp_path)
    assert rc == 1 and {('LABEL_NOT_SINGLE_CHANNEL', 'ann_dir/train/00000.png'),
                        ('LABEL_OVERFLOW', 'ann_dir/train/00001.png'),
                        ('LABEL_OUT_OF_RANGE', 'ann_dir/train/00001.png')} <= _codes(found), found
    assert '300 (4 px)' in {f[1]: f[3] for f in found}['LABEL_OVERFLOW']


def test_missing_data_root_and_refused_palette_folder(built: dict, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    rc, found, _ = _check(capsys, SEG, tmp_path / 'nowhere', tmp_path)
    assert rc == 1 and [f[1] for f in found] == ['DATA_ROOT_MISSING']
    assert main(['check-data', str(SEG), '--fix-palette', str(built['seg'] / 'ann_dir/train'),
                 '--cfg-options', f"train_dataloader.dataset.data_root={built['seg']}"]) == 2
    assert 'is the label folder itself' in capsys.readouterr().err


def test_medical_case_without_images_still_checks_the_rest(built: dict, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    root = _copy(built, 'med', tmp_path)
    for path in (root / 'imagesTr').glob('phantom_001_000*.nii.gz'):
        path.unlink()  # the dataset class stops here (FileNotFoundError)
    _rewrite_nifti(root / 'labelsTr/phantom_002.nii.gz',
                   lambda d, a: (np.where(d == 2, 7, d).astype(d.dtype), a))
    rc, found, _ = _check(capsys, MED, root, tmp_path)
    assert rc == 1 and {('DATASET_ERROR', 'dataset.json'),
                        ('MODALITY_MISSING', 'imagesTr/phantom_001_0000.nii.gz'),
                        ('MODALITY_MISSING', 'imagesTr/phantom_001_0001.nii.gz'),
                        ('LABEL_VALUE_UNKNOWN', 'labelsTr/phantom_002.nii.gz')
                        } <= _codes(found), found
