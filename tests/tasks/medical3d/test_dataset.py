"""Volumes: phantoms, NIfTI checks, orientation, resampling, normalisation, datasets, transforms."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from densekit.tasks.medical3d import (
    MedicalVolumeDataset,
    Preprocessor,
    RandomAffine3D,
    RandomFlip3D,
    RandomPatch3D,
    RandomRotate90,
    generate_phantoms,
    read_case,
    write_labels,
)
from densekit.tasks.medical3d.nifti import UnreadableNifti, channel_files
from densekit.tasks.medical3d.preprocess import normalize_channel


@pytest.fixture(scope='module')
def phantoms(tmp_path_factory):
    return generate_phantoms(tmp_path_factory.mktemp('phantoms'), num_train=2, num_val=1,
                             num_test=1, fov_mm=(40.0, 56.0, 56.0))


def _case(root, name='phantom_000'):
    return read_case(channel_files(str(root / 'imagesTr' / f'{name}_0000.nii.gz')),
                     str(root / 'labelsTr' / f'{name}.nii.gz'))


def test_phantoms_have_anisotropic_oblique_grids_and_dataset_json(phantoms):
    meta = json.loads((phantoms / 'dataset.json').read_text())
    assert meta['channel_names'] == {'0': 'T2', '1': 'T1'}
    assert meta['labels'] == {'background': 0, 'organ': 1, 'lesion': 2}
    assert len(meta['training']) == 3 and len(meta['test']) == 1
    case = _case(phantoms)
    zooms = np.sqrt((case.affine[:3, :3] ** 2).sum(0))
    assert zooms[2] > 1.2 * zooms[0]  # thick slices
    assert np.abs(case.affine[:3, :3] - np.diag(np.diag(case.affine[:3, :3]))).max() > 0.01
    assert set(np.unique(case.label)) == {0, 1, 2}
    # lesions lie inside the organ: the organ+lesion mask is one filled blob
    from scipy.ndimage import label as components
    assert components(case.label > 0)[1] == 1
    before = (phantoms / 'imagesTr' / 'phantom_000_0000.nii.gz').stat().st_mtime_ns
    generate_phantoms(phantoms, num_train=2, num_val=1, num_test=1, fov_mm=(40.0, 56.0, 56.0))
    assert (phantoms / 'imagesTr' / 'phantom_000_0000.nii.gz').stat().st_mtime_ns == before


def test_canonical_orientation_spacing_and_exact_inverse(phantoms):
    case = _case(phantoms)
    image, label, meta = Preprocessor(['T2', 'T1'])(case)
    canonical = nib.as_closest_canonical(nib.load(case.label_path))
    assert np.array_equal(label, np.asarray(canonical.dataobj).transpose(2, 1, 0))
    assert meta.spacing == pytest.approx(canonical.header.get_zooms()[::-1], rel=1e-5)
    assert np.array_equal(Preprocessor.invert_labels(label, meta), case.label)


def test_resampling_keeps_physical_volumes(phantoms):
    case = _case(phantoms)
    _, label, meta = Preprocessor(['T2', 'T1'], target_spacing=(2.0, 2.0, 2.0))(case)
    assert meta.spacing == pytest.approx((2.0, 2.0, 2.0), rel=0.05)
    voxel_before = np.prod(meta.original_spacing)
    for c in (1, 2):
        before = (case.label == c).sum() * voxel_before
        after = (label == c).sum() * np.prod(meta.spacing)
        assert after == pytest.approx(before, rel=0.15)
    back = Preprocessor.invert_labels(label, meta)
    assert back.shape == case.label.shape and (back == case.label).mean() > 0.97


def test_normalisation_schemes():
    rng = np.random.default_rng(0)
    ct = np.concatenate([rng.normal(40, 10, 9800), [-3000] * 100, [5000] * 100])
    out = normalize_channel(ct, 'ct')
    lo, hi = np.percentile(ct, (0.5, 99.5))
    clipped = np.clip(ct, lo, hi)
    assert np.allclose(out, (clipped - clipped.mean()) / clipped.std(), atol=1e-4)
    mri = np.zeros(1000, np.float32)
    mri[:500] = rng.normal(300, 50, 500)
    out = normalize_channel(mri, 'zscore')
    assert out[500:].max() == 0 and abs(out[:500].mean()) < 1e-5
    assert abs(out[:500].std() - 1) < 1e-4


def test_bad_inputs_raise_errors_naming_the_file(phantoms, tmp_path):
    case = _case(phantoms)
    img_path = case.image_paths[0]
    bad_shape = tmp_path / 'shape.nii.gz'
    nib.save(nib.Nifti1Image(case.label[:-1].astype(np.uint8), case.affine), bad_shape)
    with pytest.raises(ValueError, match='shape.nii.gz.*shape'):
        read_case([img_path], str(bad_shape))
    moved = case.affine.copy()
    moved[0, 3] += 5.0
    bad_affine = tmp_path / 'affine.nii.gz'
    nib.save(nib.Nifti1Image(case.label.astype(np.uint8), moved), bad_affine)
    with pytest.raises(ValueError, match='affine.nii.gz.*affine'):
        read_case([img_path], str(bad_affine))
    data = case.image[0].copy()
    data[3, 4, 5] = np.nan
    nan_path = tmp_path / 'nan.nii.gz'
    nib.save(nib.Nifti1Image(data, case.affine), nan_path)
    with pytest.raises(ValueError, match='nan.nii.gz: 1 NaN'):
        read_case([str(nan_path)])
    corrupt = tmp_path / 'corrupt.nii.gz'
    corrupt.write_bytes(b'not a nifti file at all')
    with pytest.raises(UnreadableNifti, match='corrupt.nii.gz'):
        read_case([str(corrupt)])


def test_write_labels_keeps_affine_and_header(tmp_path, phantoms):
    case = _case(phantoms)
    out = write_labels(case.label, case.affine, case.header, str(tmp_path / 'seg.nii.gz'))
    img = nib.load(out)
    assert img.get_data_dtype() == np.uint8 and np.array_equal(np.asarray(img.dataobj),
                                                               case.label)
    assert np.allclose(img.affine, case.affine) and img.header['qform_code'] == 1
    big = case.label.astype(np.int64) * 200
    assert nib.load(write_labels(big, case.affine, case.header,
                                 str(tmp_path / 'big.nii'))).get_data_dtype() == np.uint16


def test_msd_layout_with_4d_images(tmp_path, phantoms):
    case = _case(phantoms)
    (tmp_path / 'imagesTr').mkdir()
    (tmp_path / 'labelsTr').mkdir()
    for i in range(3):
        nib.save(nib.Nifti1Image(np.moveaxis(case.image, 0, -1), case.affine),
                 tmp_path / 'imagesTr' / f'brain_{i}.nii.gz')
        nib.save(nib.Nifti1Image(case.label.astype(np.uint8), case.affine),
                 tmp_path / 'labelsTr' / f'brain_{i}.nii.gz')
    meta = {'modality': {'0': 'FLAIR', '1': 'T1w'},
            'labels': {'0': 'background', '1': 'edema', '2': 'tumour'},
            'training': [{'image': f'./imagesTr/brain_{i}.nii.gz',
                          'label': f'./labelsTr/brain_{i}.nii.gz'} for i in range(3)]}
    (tmp_path / 'dataset.json').write_text(json.dumps(meta))
    train = MedicalVolumeDataset(str(tmp_path), split='train', val_fraction=1 / 3)
    val = MedicalVolumeDataset(str(tmp_path), split='val', val_fraction=1 / 3)
    assert len(train) == 2 and len(val) == 1
    assert train.metainfo['classes'] == ('background', 'edema', 'tumour')
    item = val[0]
    assert item['img'].shape[0] == 2 and np.array_equal(item['img'][0],
                                                         _preprocessed(case)[0][0])


def _preprocessed(case):
    return Preprocessor(['zscore', 'zscore'])(case)


def test_phantom_dataset_splits_and_fg_locations(phantoms):
    val = MedicalVolumeDataset(str(phantoms), split='val')
    assert [d['case_id'] for d in val.data_list] == ['phantom_002']
    item = val[0]
    assert item['img'].dtype == np.float32 and item['gt_seg'].shape == item['img'].shape[1:]
    flat = item['gt_seg'].ravel()
    assert all((flat[idx] == c).all() and len(idx) == min((flat == c).sum(), 10000)
               for c, idx in item['fg_locations'].items())


def test_patch_sampler_fixed_foreground_fraction(phantoms):
    item = MedicalVolumeDataset(str(phantoms), split='val')[0]
    sampler = RandomPatch3D((8, 8, 8), fg_fraction=1 / 3)
    np.random.seed(0)
    flags, fg = [], []
    for _ in range(30):
        out = sampler(dict(item))
        assert out['img'].shape == (2, 8, 8, 8) and out['gt_seg'].shape == (8, 8, 8)
        flags.append(out['fg_patch'])
        fg.append(out['gt_seg'].any())
    assert sum(flags) == 10  # exactly 1/3 of the patches are foreground-centred
    assert all(g for f, g in zip(flags, fg) if f)
    big = RandomPatch3D((64, 64, 64))(dict(item))  # larger than the volume: padded
    assert big['img'].shape == (2, 64, 64, 64)


def test_spatial_augmentations_move_image_and_labels_together():
    rng = np.random.default_rng(0)
    seg = (rng.random((12, 12, 12)) > 0.7).astype(np.uint8)
    seg[3:9, 2:7, 4:10] = 2
    base = dict(img=np.stack([seg.astype(np.float32), -seg.astype(np.float32)]), gt_seg=seg)
    np.random.seed(1)
    for transform in (RandomFlip3D(prob=1.0), RandomRotate90(prob=1.0)):
        out = transform(dict(base))
        assert np.array_equal(out['img'][0], out['gt_seg'].astype(np.float32))
        assert not np.array_equal(out['gt_seg'], seg)
    smooth = np.zeros((16, 16, 16), np.uint8)
    smooth[4:12, 5:11, 3:13] = 1
    out = RandomAffine3D(prob=1.0, degrees=20, scale=(0.9, 1.1))(
        dict(img=smooth[None].astype(np.float32), gt_seg=smooth))
    assert (np.rint(out['img'][0]) == out['gt_seg']).mean() > 0.97
    assert not np.array_equal(out['gt_seg'], smooth)
