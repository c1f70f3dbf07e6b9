"""``densekit plan``: nnU-Net's planning rules (expected values worked out by hand from the
documented rules), the measured footprint, plans of the built-in phantoms, the bad-input
report, and plan -> train --fold -> infer --ensemble end to end."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from mmengine.config import Config

import densekit  # noqa: F401
from densekit.cli import main
from densekit.tasks.medical3d import generate_phantoms
from densekit.tasks.medical3d.autoconfig import fold_overrides, make_splits
from densekit.tasks.medical3d.dataset import MissingImages, read_dataset_json
from densekit.tasks.medical3d.fingerprint import DatasetProblems, fingerprint_dataset
from densekit.tasks.medical3d.planner import (
    initial_patch_size,
    measure_footprint,
    network_topology,
    normalization_plan,
    plan_dataset,
    pool_and_conv_props,
    target_spacing,
)
from densekit.tasks.medical3d.postprocess import decide_postprocessing, keep_largest_component


# -- nnU-Net's rules, values from the rules (not from this code) ---------------------------------
def test_target_spacing_isotropic_is_the_median():
    spacings = [[1.0, 0.8, 0.8], [1.2, 0.8, 0.8], [1.5, 0.9, 0.9]]
    spacing, aniso = target_spacing(spacings, [[100, 200, 200]] * 3)
    assert spacing == pytest.approx((1.2, 0.8, 0.8)) and not aniso


def test_target_spacing_anisotropic_takes_the_10th_percentile():
    # median z 5 mm > 3 * 0.8 mm and median 30 slices * 3 < 300: z takes the 10th percentile of
    # [3, 4, 5, 6, 7] = 3 + 0.4 * (4 - 3) = 3.4 mm
    spacings = [[z, 0.8, 0.8] for z in (3.0, 4.0, 5.0, 6.0, 7.0)]
    spacing, aniso = target_spacing(spacings, [[30, 300, 300]] * 5)
    assert aniso and spacing == pytest.approx((3.4, 0.8, 0.8))


def test_target_spacing_needs_both_anisotropic_spacing_and_voxels():
    spacings = [[z, 0.8, 0.8] for z in (3.0, 4.0, 5.0, 6.0, 7.0)]
    # 150 slices * 3 >= 300: not anisotropic in voxels, so the median stays
    spacing, aniso = target_spacing(spacings, [[150, 300, 300]] * 5)
    assert not aniso and spacing == pytest.approx((5.0, 0.8, 0.8))
    # spacing ratio 2.9 < 3: the median stays too
    spacing, aniso = target_spacing([[2.9, 1.0, 1.0]] * 3, [[20, 300, 300]] * 3)
    assert not aniso and spacing == pytest.approx((2.9, 1.0, 1.0))


def test_target_spacing_low_axis_never_finer_than_the_others():
    # the 10th percentile (0.6 mm) is below the largest other spacing (1.0 mm): 1.0 + 1e-5
    spacings = [[z, 1.0, 1.0] for z in (0.6, 0.6, 3.5, 3.5, 3.5)]
    spacing, aniso = target_spacing(spacings, [[20, 200, 200]] * 5)
    assert aniso and spacing == pytest.approx((1.0 + 1e-5, 1.0, 1.0), abs=1e-7)


def test_pooling_isotropic_128():
    t = pool_and_conv_props((1.0, 1.0, 1.0), (128, 128, 128))
    # 128 -> 64 -> 32 -> 16 -> 8 -> 4: five poolings (an axis pools while >= 2 * 4)
    assert t.num_pool_per_axis == [5, 5, 5]
    assert t.pool_op_kernel_sizes == [[1, 1, 1]] + [[2, 2, 2]] * 5
    assert t.conv_kernel_sizes == [[3, 3, 3]] * 6
    assert t.patch_size == [128, 128, 128] and t.must_be_divisible_by == [32, 32, 32]


def test_pooling_isotropic_pads_the_patch_to_the_stride():
    t = pool_and_conv_props((1.0, 1.0, 1.0), (100, 90, 70))
    # 100 -> 50 -> 25 -> 13 -> 7, 90 -> 45 -> 23 -> 12 -> 6, 70 -> 35 -> 18 -> 9 -> 5
    assert t.num_pool_per_axis == [4, 4, 4]
    assert t.patch_size == [112, 96, 80]


def test_pooling_anisotropic_thick_slices():
    t = pool_and_conv_props((3.0, 0.8, 0.8), (20, 160, 160))
    # z joins once the in-plane spacing reaches 1.6 mm (3 / 1.6 < 2); z stops at 5 < 8 slices
    assert t.num_pool_per_axis == [2, 5, 5]
    assert t.pool_op_kernel_sizes == [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2],
                                      [1, 2, 2]]
    assert t.conv_kernel_sizes == [[1, 3, 3]] + [[3, 3, 3]] * 5
    assert t.must_be_divisible_by == [4, 32, 32] and t.patch_size == [20, 160, 160]


def test_pooling_a_lone_axis_needs_three_times_the_minimum():
    t = pool_and_conv_props((1.0, 1.0, 1.0), (64, 8, 8))
    # all pool once (-> 32, 4, 4); then z alone pools while >= 12: 32 -> 16 -> 8, stop at 8
    assert t.num_pool_per_axis == [3, 1, 1]


def test_initial_patch_follows_the_spacing_and_median_shape():
    assert initial_patch_size((1.0, 1.0, 1.0), (300, 300, 300)) == [256, 256, 256]
    # 1 / spacing = (0.5, 1, 1) scaled to 256^3 voxels: 256 * 2^(1/3) = 322.5 in-plane
    assert initial_patch_size((2.0, 1.0, 1.0), (500, 500, 500)) == [161, 323, 323]
    assert initial_patch_size((2.0, 1.0, 1.0), (40, 200, 500)) == [40, 200, 323]


def test_normalisation_by_channel_name():
    fp = dict(channel_names=['CT', 'T2'],
              intensity=[dict(mean=40.0, std=20.0, percentile_00_5=-100.0,
                              percentile_99_5=200.0, median=40.0, min=-1000.0, max=900.0),
                         dict(mean=1.0, std=1.0, percentile_00_5=0.0, percentile_99_5=2.0,
                              median=1.0, min=0.0, max=3.0)])
    ct, mr = normalization_plan(fp)
    assert ct['scheme'] == 'ct' and ct['stats']['percentile_00_5'] == -100.0
    assert mr['scheme'] == 'zscore' and mr['stats'] is None


def test_splits_are_seeded_nnunet_folds():
    ids = [f'case_{i:02d}' for i in range(12)]
    splits = make_splits(ids[::-1])
    assert len(splits) == 5 and splits == make_splits(ids)
    held_out = sorted(c for fold in splits for c in fold['val'])
    assert held_out == ids  # every case is held out exactly once
    assert all(not set(f['train']) & set(f['val']) for f in splits)


# -- measured footprint ---------------------------------------------------------------------------
@pytest.mark.slow
def test_footprint_scaled_from_a_small_patch_predicts_a_large_one():
    """Activation memory measured at two small patches, extrapolated by voxels, within 15 % of
    a direct measurement of the same training step at 8x the voxels of the first."""
    # slow: three profiled training steps (about 25 s on 2 busy cores)
    from densekit.tasks.medical3d.planner import _train_step_peak_bytes, model_config

    net = network_topology('tiny', pool_and_conv_props((1.0, 1.0, 1.0), (16, 16, 16)))
    assert net['num_stages'] == 3 and net['total_stride'] == [4, 4, 4]
    foot = measure_footprint(net, 1, 3)
    assert foot.measured_patch == [[16, 16, 16], [24, 24, 24]]
    direct = _train_step_peak_bytes(model_config(net, 1, 3), 1, 3, [32, 32, 32])
    predicted = foot.bytes([32, 32, 32], 1) - foot.state_bytes
    assert predicted == pytest.approx(direct, rel=0.15)
    assert foot.params == sum(p.numel() for p in _model(net).parameters())


@pytest.mark.slow
def test_footprint_width_scaling_matches_the_full_width():
    """The big presets are measured at a fraction of their width; that scaling must agree with
    a measurement at the full width (small preset, 2 stages, tiny patch)."""
    from densekit.tasks.medical3d.planner import _train_step_peak_bytes, model_config

    net = network_topology('small', pool_and_conv_props((1.0, 1.0, 1.0), (16, 16, 16)))
    net = dict(net, num_stages=3, widths=net['widths'][:3], depths=net['depths'][:3],
               strides=net['strides'][:2], kernel_sizes=net['kernel_sizes'][:3],
               total_stride=[4, 4, 4])
    foot = measure_footprint(net, 1, 3, measure_patch=[16, 16, 16])
    assert foot.width_divisor == 2
    direct = _train_step_peak_bytes(model_config(net, 1, 3), 1, 3, [24, 24, 24])
    predicted = foot.bytes([24, 24, 24], 1) - foot.state_bytes
    assert predicted == pytest.approx(direct, rel=0.15)


def _model(net):
    from mmengine.registry import init_default_scope

    from densekit.registry import MODELS
    from densekit.tasks.medical3d.planner import model_config

    init_default_scope('densekit')
    return MODELS.build(model_config(net, 1, 3))


# -- plans of built-in phantoms ------------------------------------------------------------------
@pytest.fixture(scope='module')
def phantom_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp('plan')
    small = dict(num_val=0, num_test=0)
    return dict(
        mr=generate_phantoms(root / 'mr', num_train=5, fov_mm=(48., 48., 48.), **small),
        aniso=generate_phantoms(root / 'aniso', num_train=5, fov_mm=(36., 48., 48.),
                                in_plane_mm=(0.8, 0.8), slice_mm=(2.5, 3.5), **small),
        ct=generate_phantoms(root / 'ct', num_train=5, fov_mm=(48., 48., 48.), modality='ct',
                             **small))


def test_fingerprints_drive_the_rules(phantom_sets):
    """Without the (slow) memory measurement: spacing, kernels and normalisation follow the
    data."""
    fps = {k: fingerprint_dataset(str(v), workers=2, progress=False)
           for k, v in phantom_sets.items()}
    rules = {}
    for k, fp in fps.items():
        spacing, aniso = target_spacing(fp['spacings'], fp['shapes_after_crop'])
        topo = pool_and_conv_props(spacing, [16, 64, 64])
        rules[k] = (spacing, aniso, topo, normalization_plan(fp))
    assert not rules['mr'][1] and rules['mr'][2].conv_kernel_sizes[0] == [3, 3, 3]
    assert rules['aniso'][1] and rules['aniso'][2].conv_kernel_sizes[0] == [1, 3, 3]
    assert rules['aniso'][0][0] < np.median(np.array(fps['aniso']['spacings'])[:, 0])
    assert [n['scheme'] for n in rules['ct'][3]] == ['ct']
    assert [n['scheme'] for n in rules['mr'][3]] == ['zscore', 'zscore']
    fp = fps['mr']
    assert fp['case_ids'] == [f'phantom_{i:03d}' for i in range(5)]
    counts = fp['class_voxel_counts']
    assert set(counts) == {'background', 'organ', 'lesion'} and counts['lesion'] > 0
    for spacing, shape, crop in zip(fp['spacings'], fp['shapes'], fp['shapes_after_crop']):
        assert all(c <= n for c, n in zip(crop, shape)) and len(spacing) == 3
    assert fp['files'] == 15 and fp['files_per_second'] > 0


@pytest.mark.slow
def test_plans_change_with_the_data(phantom_sets):
    fps = {k: fingerprint_dataset(str(v), workers=2, progress=False)
           for k, v in phantom_sets.items()}
    plans = {k: plan_dataset(fp, cpu=True) for k, fp in fps.items()}
    mr, aniso, ct = plans['mr'], plans['aniso'], plans['ct']
    assert not mr['anisotropic']
    assert mr['target_spacing'] == pytest.approx(fps['mr']['median_spacing'], abs=1e-6)
    assert mr['network']['kernel_sizes'][0] == [3, 3, 3]
    assert [n['scheme'] for n in mr['normalization']] == ['zscore', 'zscore']
    # 0.8 x 0.8 x 2.5-3.5 mm: anisotropic; z at the 10th percentile of the slice spacings
    z = np.array(fps['aniso']['spacings'])[:, 0]
    assert aniso['anisotropic'] and aniso['target_spacing'][0] == pytest.approx(
        np.percentile(z, 10), abs=1e-5)
    assert aniso['target_spacing'][0] < np.median(z)
    assert aniso['network']['kernel_sizes'][0] == [1, 3, 3]
    assert aniso['network']['strides'][0] == [1, 2, 2]
    # CT: one channel, global clip + z-score from the foreground statistics of the dataset
    (norm,) = ct['normalization']
    stats = fps['ct']['intensity'][0]
    assert norm['scheme'] == 'ct' and norm['stats']['mean'] == stats['mean']
    assert 40 < stats['mean'] < 140 and stats['percentile_00_5'] < stats['percentile_99_5']
    for plan in plans.values():  # the plan fits its budget and the patch fits the stride
        assert plan['memory']['estimated_gb'] <= plan['memory']['budget_gb']
        assert all(p % t == 0 for p, t in zip(plan['patch_size'],
                                              plan['network']['total_stride']))


@pytest.mark.slow
def test_a_smaller_budget_gives_a_smaller_network_or_patch():
    # 1 mm, 64^3 cases: the initial patch (64^3) pools 4 times, 5 preset stages are used
    stats = dict(mean=0.0, std=1.0, median=0.0, min=-1.0, max=1.0, percentile_00_5=-1.0,
                 percentile_99_5=1.0)
    fp = dict(channel_names=['MR'], classes=['background', 'a', 'b'],
              spacings=[[1.0, 1.0, 1.0]] * 20, shapes_after_crop=[[64, 64, 64]] * 20,
              intensity=[dict(channel='MR', **stats)])
    plans = {gb: plan_dataset(fp, gpu_memory_gb=gb) for gb in (80, 1)}
    order = ['small', 'base', 'large', 'huge']
    big, small = plans[80], plans[1]
    assert big['network']['num_stages'] == 5
    assert (order.index(big['network']['arch']) > order.index(small['network']['arch'])
            or np.prod(big['patch_size']) > np.prod(small['patch_size']))
    for gb, plan in plans.items():
        assert plan['memory']['estimated_gb'] <= gb * 0.85


def test_bad_cases_are_reported_together_and_inputs_untouched(tmp_path):
    root = generate_phantoms(tmp_path / 'bad', num_train=4, num_val=0, num_test=0,
                             fov_mm=(40., 40., 40.))
    (root / 'labelsTr' / 'phantom_000.nii.gz').unlink()  # missing label
    lab = nib.load(root / 'labelsTr' / 'phantom_001.nii.gz')  # a value not in dataset.json
    data = np.asarray(lab.dataobj).copy()
    data[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(data, lab.affine, lab.header), root / 'labelsTr' /
             'phantom_001.nii.gz')
    img = nib.load(root / 'imagesTr' / 'phantom_002_0001.nii.gz')  # channel flipped
    flipped = img.affine @ np.diag([-1.0, 1.0, 1.0, 1.0])
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), flipped), root / 'imagesTr' /
             'phantom_002_0001.nii.gz')
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob('*.nii.gz')}
    with pytest.raises(DatasetProblems) as err:
        fingerprint_dataset(str(root), workers=2, progress=False)
    problems = err.value.problems
    assert sorted(problems) == ['phantom_000', 'phantom_001', 'phantom_002']
    assert 'not found' in problems['phantom_000'] and '[7]' in problems['phantom_001']
    assert 'affine' in problems['phantom_002']
    for name in ('phantom_002_0000', 'phantom_003_0000'):  # missing images: all named too
        (root / 'imagesTr' / f'{name}.nii.gz').rename(tmp_path / f'{name}.nii.gz')
    with pytest.raises(DatasetProblems) as err:
        fingerprint_dataset(str(root), workers=1, progress=False)
    assert sorted(err.value.problems) == ['phantom_002', 'phantom_003']
    with pytest.raises(MissingImages) as missing:  # the dataset reader itself names both
        read_dataset_json(str(root))
    assert sorted(missing.value.missing) == ['phantom_002', 'phantom_003']
    assert 'phantom_002_0000.nii.gz' in str(missing.value) and '\n' not in str(missing.value)
    for name in ('phantom_002_0000', 'phantom_003_0000'):
        (tmp_path / f'{name}.nii.gz').rename(root / 'imagesTr' / f'{name}.nii.gz')
    assert main(['plan', str(root), '--out', str(tmp_path / 'plan'), '--cpu',
                 '--no-progress']) == 2
    assert not (tmp_path / 'plan').exists()
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob('*.nii.gz')}
    assert before == after


def test_fold_overrides(tmp_path):
    splits = tmp_path / 'splits.json'
    splits.write_text(json.dumps(make_splits([f'c{i}' for i in range(6)])))
    ds = dict(type='MedicalVolumeDataset', data_root=str(tmp_path), splits_file=str(splits))
    cfg = Config(dict(train_dataloader=dict(dataset=ds), val_dataloader=dict(dataset=ds),
                      work_dir='work_dirs/x'))
    opts, wd = fold_overrides(cfg, '3')
    assert opts == {'train_dataloader.dataset.fold': 3, 'val_dataloader.dataset.fold': 3}
    assert wd == 'work_dirs/x/fold_3'
    opts, wd = fold_overrides(cfg, 'all', 'elsewhere')
    assert opts == {'train_dataloader.dataset.split': 'all'} and wd == 'elsewhere'
    with pytest.raises(ValueError, match="fold index or 'all'"):
        fold_overrides(cfg, 'first')
    with pytest.raises(ValueError, match='MedicalVolumeDataset'):
        fold_overrides(Config(dict(train_dataloader=dict(dataset=dict(type='X')))), 0)


def test_keep_largest_component_and_the_per_class_decision():
    gt = np.zeros((12, 12, 12), np.uint8)
    gt[2:6, 2:6, 2:6] = 1
    gt[7:10, 7:10, 7:10] = 2
    gt[7:9, 1:3, 1:3] = 2  # class 2 really has two components
    pred = gt.copy()
    pred[10:12, 10:12, 0:2] = 1  # a spurious island of class 1
    out = keep_largest_component(pred, [1])
    assert (out[10:12, 10:12, 0:2] == 0).all() and (out == 1).sum() == 64
    decision = decide_postprocessing([(pred, gt)], 3)
    assert decision['keep_largest_component'] == [1]  # helps class 1, would hurt class 2


# -- plan -> train --fold -> infer --ensemble ---------------------------------------------------
@pytest.mark.slow
def test_plan_train_folds_and_ensemble(tmp_path, monkeypatch):
    """Plan the phantoms, train folds 0 and 1 for 2 iterations from the generated config,
    infer with --ensemble: the written labels are the argmax of the mean of the two models'
    softmax (a float64 reference), and the ensemble's blended probabilities equal that mean
    within a tolerance set by each model's own float32-vs-float64 error."""
    from densekit.inference import build_model
    from densekit.tasks.medical3d.ensemble import predict_ensemble
    from densekit.tasks.medical3d.nifti import read_case
    from densekit.tasks.medical3d.preprocess import Preprocessor
    from densekit.windowed.engine import sliding_window_inference

    monkeypatch.chdir(tmp_path)
    data = generate_phantoms(tmp_path / 'ph', num_train=6, num_val=0, num_test=1,
                             fov_mm=(40., 40., 40.))
    before = {p: p.stat().st_mtime_ns for p in data.rglob('*.nii.gz')}
    plan_dir = tmp_path / 'plan'
    assert main(['plan', str(data), '--out', str(plan_dir), '--cpu', '--workers', '2',
                 '--no-progress']) == 0
    plans = json.loads((plan_dir / 'plans.json').read_text())
    splits = json.loads((plan_dir / 'splits.json').read_text())
    assert len(splits) == 5 and plans['plan']['network']['arch'] == 'tiny'
    config = str(plan_dir / 'config.py')
    cfg = Config.fromfile(config)
    assert cfg.data_root == str(data.resolve()) and tuple(cfg.patch_size) == tuple(
        plans['plan']['patch_size'])
    opts, wd = fold_overrides(cfg, 1)
    assert opts['train_dataloader.dataset.fold'] == 1 and wd.endswith('fold_1')
    with pytest.raises(ValueError, match='folds 0..4'):
        fold_overrides(cfg, 5)
    quick = ['train_cfg.max_iters=2', 'train_cfg.val_interval=100',
             'default_hooks.checkpoint.interval=2', 'train_dataloader.num_workers=0',
             'train_dataloader.persistent_workers=False']
    ckpts = []
    for fold in (0, 1):
        assert main(['train', config, '--fold', str(fold), '--cfg-options', *quick]) == 0
        ckpt = tmp_path / 'work_dirs' / f'plan-{plans["dataset"]}' / f'fold_{fold}' / 'iter_2.pth'
        assert ckpt.is_file()
        ckpts.append(str(ckpt))
    case = data / 'imagesTs' / 'phantom_006_0000.nii.gz'
    out = tmp_path / 'pred'
    assert main(['infer', config, ckpts[0], str(case), '--out', str(out),
                 '--ensemble', ckpts[1], '--device', 'cpu']) == 0
    written = np.asarray(nib.load(out / 'phantom_006_seg.nii.gz').dataobj)

    # float64 reference: each model's blended softmax, then the mean
    models = [build_model(cfg, c, 'cpu') for c in ckpts]
    pre = Preprocessor(['T2', 'T1'], cfg.target_spacing, intensity_stats=cfg.intensity_stats)
    image, _, meta = pre(read_case([str(case), str(case).replace('_0000', '_0001')]))
    volume = torch.from_numpy(image)[None]
    tc = models[0].test_cfg
    roi = models[0]._roi(volume.shape[2:])

    def blended(model, dtype):
        m = model.to(dtype)
        return sliding_window_inference(
            volume.to(dtype), roi, 1, lambda w: torch.softmax(m._predictor(w), 1),
            overlap=tc['overlap'], mode=tc['mode'], sigma_scale=tc['sigma_scale'])[0]

    ref = [blended(m, torch.float64) for m in models]
    single32 = [blended(m, torch.float32).double() for m in models]
    mean64 = (ref[0] + ref[1]) / 2
    for m in models:
        m.float()
    ens = predict_ensemble(models, volume[0], labels=False).double()
    tol = 4 * max(float((s - r).abs().max()) for s, r in zip(single32, ref)) + 1e-6
    assert float((ens - mean64).abs().max()) <= tol
    assert float((ref[0] - ref[1]).abs().max()) > 100 * tol  # the two folds really differ
    top2 = mean64.topk(2, dim=0).values
    clear = (top2[0] - top2[1] > 10 * tol).numpy()
    expected = pre.invert_labels(mean64.argmax(0).to(torch.uint8), meta)
    clear = pre.invert_labels(torch.from_numpy(clear.astype(np.uint8)), meta).astype(bool)
    assert clear.mean() > 0.99
    assert (written[clear] == expected[clear]).all()

    # evaluate-folds: each fold on its own held-out cases; the decision lands in plans.json
    fold_dirs = [str(Path(c).parent) for c in ckpts]
    assert main(['evaluate-folds', *fold_dirs, '--out', str(tmp_path / 'folds.json')]) == 0
    result = json.loads((tmp_path / 'folds.json').read_text())
    assert [f['fold'] for f in result['folds']] == [0, 1]
    assert [f['cases'] for f in result['folds']] == [len(splits[0]['val']), len(splits[1]['val'])]
    assert set(result['folds'][0]['dice']) == {'organ', 'lesion'}
    stored = json.loads((plan_dir / 'plans.json').read_text())['postprocessing']
    assert stored['keep_largest_component'] == result['postprocessing']['keep_largest_component']
    # infer applies a stored decision: class 1 keeps one connected component
    stored['keep_largest_component'] = [1]
    plans = json.loads((plan_dir / 'plans.json').read_text())
    plans['postprocessing'] = stored
    (plan_dir / 'plans.json').write_text(json.dumps(plans))
    assert main(['infer', config, ckpts[0], str(case), '--out', str(tmp_path / 'post'),
                 '--device', 'cpu']) == 0
    post = np.asarray(nib.load(tmp_path / 'post' / 'phantom_006_seg.nii.gz').dataobj)
    from scipy import ndimage
    assert ndimage.label(post == 1, np.ones((3, 3, 3)))[1] <= 1
    assert before == {p: p.stat().st_mtime_ns for p in data.rglob('*.nii.gz')}


def test_ensemble_sees_windows_only_and_averages_softmax():
    """Each member only ever gets window batches (no full-volume pass per model); labels are
    the argmax of the averaged probabilities."""
    from mmengine.registry import init_default_scope

    from densekit.registry import MODELS
    from densekit.tasks.medical3d.ensemble import predict_ensemble

    init_default_scope('densekit')
    cfg = dict(type='MedicalSegmentor',
               backbone=dict(type='ResUNetEncoder', in_channels=1, arch='tiny', num_stages=3),
               decode_head=dict(type='UNetDecoderHead', in_channels=[8, 16, 32], num_classes=3),
               test_cfg=dict(roi_size=(16, 16, 16), overlap=0.5, mode='gaussian'))
    models = []
    seen = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = MODELS.build(cfg).eval()
        original = model._predictor

        def spy(x, original=original):
            seen.append(tuple(x.shape[2:]))
            return original(x)
        model._predictor = spy
        models.append(model)
    volume = torch.randn(1, 20, 20, 16)  # 4 windows
    prob = predict_ensemble(models, volume, labels=False)
    labels = predict_ensemble(models, volume)
    assert set(seen) == {(16, 16, 16)}
    assert prob.shape == (3, 20, 20, 16)
    assert torch.allclose(prob.sum(0), torch.ones(20, 20, 16), atol=1e-5)
    top2 = prob.topk(2, 0).values
    clear = top2[0] - top2[1] > 1e-4
    assert (labels[clear] == prob.argmax(0)[clear].to(labels.dtype)).all()
    with pytest.raises(ValueError, match='at least one'):
        predict_ensemble([], volume)


def test_cli_plan_help_is_light():
    from densekit.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(['plan', 'd', '--out', 'p', '--cpu'])
    assert args.cpu and args.gpu_memory is None
    with pytest.raises(SystemExit):
        parser.parse_args(['plan', 'd', '--out', 'p', '--cpu', '--gpu-memory', '8'])
    assert Path(__file__).exists()
