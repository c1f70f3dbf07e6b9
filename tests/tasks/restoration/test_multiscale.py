"""Mixed-scale SR (MDSR): the multi-scale dataset, MixedScaleBatchSampler, per-batch routing,
per-scale metrics and the x2/x3/x4 CPU config (its quality gate is slow)."""
from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.dataset import ConcatDataset, DefaultSampler, InfiniteSampler
from mmengine.structures import BaseDataElement

from densekit.errors import ArgumentError
from densekit.registry import DATA_SAMPLERS, DATASETS, METRICS, MODELS
from densekit.tasks.restoration.imresize import imresize
from densekit.tasks.restoration.multiscale import (
    MixedScaleBatchSampler,
    MultiScalePairedDataset,
    _interleave,
    apportion,
)
from densekit.tasks.restoration.photos import generate_restoration_photos

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / 'configs' / 'restoration' / 'mdsr_x2x3x4c32b8_1xb4-4min_photos.py'


class ScaleTagged:
    """A dataset stand-in: ``n`` data infos per scale (scale-major, like the real one)."""

    def __init__(self, counts: dict) -> None:
        self.infos = [dict(scale=s) for s, n in counts.items() for _ in range(n)]

    def __len__(self) -> int:
        return len(self.infos)

    def get_data_info(self, index: int) -> dict:
        return self.infos[index]


def _sampler(counts: dict, batch_size: int = 4, rank: int = 0, world_size: int = 1,
             seed: int = 0, infinite: bool = False, shuffle: bool = True,
             **kwargs) -> MixedScaleBatchSampler:
    data = ScaleTagged(counts)
    inner = (InfiniteSampler if infinite else DefaultSampler)(data, shuffle=shuffle, seed=seed)
    inner.rank, inner.world_size = rank, world_size
    return MixedScaleBatchSampler(inner, batch_size, **kwargs)


def _scale_of(sampler: MixedScaleBatchSampler, index: int) -> int:
    return sampler.sampler.dataset.get_data_info(index)['scale']


@pytest.fixture(scope='module')
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_restoration_photos(tmp_path_factory.mktemp('photos'), train=('page',),
                                       val=('camera',))


def test_apportion_and_interleave_by_hand() -> None:
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]
    assert apportion(7, [2, 1]) == [5, 2]          # 4.67, 2.33: the largest remainder wins
    assert apportion(6, [1, 0, 1]) == [3, 0, 3]
    assert _interleave([1, 1, 1]) == [0, 1, 2]
    assert _interleave([2, 1]) == [0, 1, 0]
    assert _interleave([3, 3, 3]) == [0, 1, 2] * 3


def test_every_batch_has_one_scale_and_full_size() -> None:
    sampler = _sampler({2: 30, 3: 30, 4: 30}, batch_size=4)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3 * 8   # ceil(30 / 4) steps per scale
    for batch in batches:
        assert len(batch) == 4
        assert len({_scale_of(sampler, i) for i in batch}) == 1


def test_default_epoch_covers_every_pair_once_when_batches_divide() -> None:
    sampler = _sampler({2: 12, 3: 8, 4: 16}, batch_size=4)
    seen = [i for batch in sampler for i in batch]
    assert sorted(seen) == list(range(36))


def test_uneven_scales_top_up_like_round_up() -> None:
    sampler = _sampler({2: 10, 3: 5}, batch_size=4)   # 3 + 2 steps, 5 + 3 topped-up samples
    seen = collections.Counter(i for batch in sampler for i in batch)
    assert set(seen) == set(range(15)) and sum(seen.values()) == 20
    assert max(seen.values()) == 2
    dropped = _sampler({2: 10, 3: 5}, batch_size=4, drop_last=True)
    assert len(dropped) == 3 and sum(len(b) for b in dropped) == 12


@pytest.mark.parametrize('weights', [(1, 1, 1), (3, 1, 0), {2: 1, 4: 3}])
def test_weights_set_the_proportions(weights) -> None:
    sampler = _sampler({2: 40, 3: 40, 4: 40}, batch_size=2, infinite=True,
                       scale_weights=weights)
    table = dict(zip((2, 3, 4), weights)) if not isinstance(weights, dict) else \
        {s: weights.get(s, 0) for s in (2, 3, 4)}
    iterator = iter(sampler)
    count = collections.Counter(_scale_of(sampler, next(iterator)[0]) for _ in range(600))
    total = sum(table.values())
    for scale, weight in table.items():   # 60 batches per epoch: exact per epoch
        assert count[scale] == 600 * weight // total


def test_weights_oversample_a_scale_beyond_its_pairs() -> None:
    sampler = _sampler({2: 4, 3: 20}, batch_size=2, scale_weights=(1, 1))  # 12 steps, 6 + 6
    x2 = [i for batch in sampler for i in batch if _scale_of(sampler, i) == 2]
    assert len(x2) == 12 and collections.Counter(x2) == {i: 3 for i in range(4)}


def test_shuffled_schedule_is_seeded_and_changes_with_epoch() -> None:
    a = _sampler({2: 20, 3: 20, 4: 20}, batch_size=2, seed=5)
    b = _sampler({2: 20, 3: 20, 4: 20}, batch_size=2, seed=5)
    c = _sampler({2: 20, 3: 20, 4: 20}, batch_size=2, seed=6)
    assert list(a) == list(b) != list(c)
    first = list(a)
    a.set_epoch(1)
    assert a.sampler.epoch == 1 and list(a) != first
    assert a.scale_schedule(0) == [_scale_of(a, batch[0]) for batch in first]
    infinite = iter(_sampler({2: 20, 3: 20, 4: 20}, batch_size=2, seed=5, infinite=True))
    assert [next(infinite) for _ in range(len(a))] == first   # epoch 0, then epoch 1, ...
    assert [next(infinite) for _ in range(len(a))] == list(a)


def test_cycle_schedule_alternates() -> None:
    sampler = _sampler({2: 8, 3: 8, 4: 8}, batch_size=2, schedule='cycle', shuffle=False)
    assert [_scale_of(sampler, b[0]) for b in sampler] == [2, 3, 4] * 4
    assert list(sampler)[:3] == [[0, 1], [8, 9], [16, 17]]   # unshuffled: dataset order


@pytest.mark.parametrize('world_size', [2, 3])
def test_ddp_shards_are_disjoint_complete_and_step_aligned(world_size: int) -> None:
    counts = {2: 12 * world_size, 3: 6 * world_size, 4: 6 * world_size}
    ranks = [list(_sampler(counts, batch_size=3, rank=r, world_size=world_size, seed=1))
             for r in range(world_size)]
    assert len({len(r) for r in ranks}) == 1
    everything = [i for r in ranks for batch in r for i in batch]
    assert sorted(everything) == list(range(sum(counts.values())))   # disjoint and complete
    probe = _sampler(counts, batch_size=3, world_size=world_size)
    for step in zip(*ranks):   # every rank trains the same scale at the same step
        assert len({_scale_of(probe, i) for batch in step for i in batch}) == 1


def test_sampler_builds_from_the_registry_and_reads_concat_datasets(photos: Path) -> None:
    parts = [DATASETS.build(dict(type='densekit.PairedImageDataset', data_root=str(photos),
                                 scale=s, data_prefix=dict(gt='val/GT', lq=f'val/LRx{s}')))
             for s in (2, 4)]
    inner = DefaultSampler(ConcatDataset(parts), shuffle=False, seed=0)   # mmengine's
    sampler = DATA_SAMPLERS.build(dict(type='densekit.MixedScaleBatchSampler'),
                                  default_args=dict(sampler=inner, batch_size=1))
    assert isinstance(sampler, MixedScaleBatchSampler) and sampler.scales == (2, 4)
    assert sorted(map(tuple, sampler)) == [(0,), (1,)]


def test_sampler_errors_name_the_argument() -> None:
    with pytest.raises(ArgumentError, match='batch_size'):
        _sampler({2: 4}, batch_size=0)
    with pytest.raises(ArgumentError, match='3 entries but the dataset has 2 scales'):
        _sampler({2: 4, 3: 4}, scale_weights=(1, 1, 1))
    with pytest.raises(ArgumentError, match=r'scales \[8\]'):
        _sampler({2: 4, 3: 4}, scale_weights={8: 1})
    with pytest.raises(ArgumentError, match='>= 0'):
        _sampler({2: 4, 3: 4}, scale_weights=(1, -1))
    with pytest.raises(ArgumentError, match='all be zero'):
        _sampler({2: 4, 3: 4}, scale_weights=(0, 0))
    with pytest.raises(ArgumentError, match='schedule'):
        _sampler({2: 4}, schedule='random')
    with pytest.raises(ArgumentError, match='drop_last leaves no batch'):
        _sampler({2: 3}, batch_size=4, drop_last=True)
    with pytest.raises(ArgumentError, match='sampler must be an mmengine sampler'):
        MixedScaleBatchSampler(object(), 2)

    class NoScale(ScaleTagged):
        def get_data_info(self, index: int) -> dict:
            return dict(gt_path='x.png')

    untagged = DefaultSampler(NoScale({2: 2}), seed=0)
    with pytest.raises(ArgumentError, match="has no 'scale'"):
        MixedScaleBatchSampler(untagged, 2)
    with pytest.raises(ArgumentError, match='get_data_info'):
        MixedScaleBatchSampler(DefaultSampler(list(range(4)), seed=0), 2)


def test_dataset_gives_pairs_of_every_scale_from_the_same_target(photos: Path) -> None:
    pipeline = [dict(type='densekit.LoadPairImages', keys=('gt',)),
                dict(type='densekit.BicubicDegrade', cache=True),
                dict(type='densekit.PairedRandomCrop', lq_patch_size=20),
                dict(type='densekit.PackRestorationInputs')]
    train = MultiScalePairedDataset(str(photos), data_prefix=dict(gt='train/GT'),
                                    scales=(2, 3, 4), pipeline=pipeline)
    assert len(train) == 3 and [train.get_data_info(i)['scale'] for i in range(3)] == [2, 3, 4]
    assert train.indices_of_scale(3) == [1]
    for i, scale in enumerate((2, 3, 4)):
        item = train[i]
        assert item['inputs'].shape == (3, 20, 20)
        assert item['data_samples'].gt_img.shape == (3, 20 * scale, 20 * scale)
        assert item['data_samples'].metainfo['scale'] == scale
    val = MultiScalePairedDataset(str(photos), data_prefix=dict(gt='val/GT', lq='val/LRx{scale}'),
                                  scales=(2, 3, 4), pipeline=[
                                      dict(type='densekit.LoadPairImages'),
                                      dict(type='densekit.PackRestorationInputs')])
    gt = val[0]['data_samples'].gt_img.permute(1, 2, 0).numpy().astype(np.uint8)
    for i, scale in enumerate((2, 3, 4)):   # the files are MATLAB bicubic of the same target
        lq = val[i]['inputs'].permute(1, 2, 0).numpy()
        assert lq.shape[:2] == (gt.shape[0] // scale, gt.shape[1] // scale)
        np.testing.assert_array_equal(lq, imresize(gt, 1.0 / scale))


def test_bicubic_degrade_reads_the_sample_scale_and_caches() -> None:
    from densekit.tasks.restoration.transforms import BicubicDegrade

    gt = (np.arange(24 * 24 * 3) % 251).astype(np.uint8).reshape(24, 24, 3)
    degrade = BicubicDegrade(cache=True)
    out = degrade(dict(gt=gt, scale=3, gt_path='a.png'))
    np.testing.assert_array_equal(out['lq'], imresize(gt, 1 / 3))
    assert degrade(dict(gt=gt, scale=3, gt_path='a.png'))['lq'] is out['lq']
    assert degrade(dict(gt=gt, scale=4, gt_path='a.png'))['lq'].shape == (6, 6, 3)
    with pytest.raises(KeyError, match="results\\['scale'\\]"):
        BicubicDegrade()(dict(gt=gt))


def test_dataset_errors_name_the_files(photos: Path, tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match=r"must contain '\{scale\}'"):
        MultiScalePairedDataset(str(photos), data_prefix=dict(gt='val/GT', lq='val/LRx2'))
    with pytest.raises(ArgumentError, match='ints >= 2'):
        MultiScalePairedDataset(str(photos), data_prefix=dict(gt='val/GT'), scales=(1, 2))
    with pytest.raises(ArgumentError, match='repeat'):
        MultiScalePairedDataset(str(photos), data_prefix=dict(gt='val/GT'), scales=(2, 2))
    with pytest.raises(FileNotFoundError, match=r'no x5 input: .*LRx5/camera.png'):
        MultiScalePairedDataset(str(photos), data_prefix=dict(gt='val/GT', lq='val/LRx{scale}'),
                                scales=(2, 5))
    import shutil
    shutil.copytree(photos / 'val', tmp_path / 'val')
    shutil.copy(photos / 'val/LRx2/camera.png', tmp_path / 'val/LRx3/camera.png')
    with pytest.raises(ValueError, match=r'LRx3/camera.png.*at scale 3 the input must be'):
        MultiScalePairedDataset(str(tmp_path), data_prefix=dict(gt='val/GT',
                                                                lq='val/LRx{scale}'))


def _mdsr() -> torch.nn.Module:
    return MODELS.build(dict(
        type='densekit.Restorer', scale=2,
        backbone=dict(type='densekit.EDSRBody', channels=8, num_blocks=1, scales=(2, 3, 4)),
        head=dict(type='densekit.PixelShuffleHead', in_channels=8, scales=(2, 3, 4))))


def _samples(*scales: int) -> list:
    return [BaseDataElement(metainfo=dict(scale=s)) for s in scales]


def test_restorer_routes_each_batch_to_its_scale_branch() -> None:
    torch.manual_seed(0)
    model = _mdsr().eval()
    x = torch.rand(2, 3, 10, 12)
    for scale in (2, 3, 4):
        out = model(x, _samples(scale, scale), mode='tensor')
        assert out.shape == (2, 3, 10 * scale, 12 * scale)
        expected = model.data_preprocessor.denormalize(model.head(
            model.backbone(x, scale=scale), x, scale=scale))
        torch.testing.assert_close(out, expected, rtol=0, atol=0)
    # the x3 loss trains only the x3 branch (and the shared body)
    model.train()
    gt = [dict(gt_img=torch.rand(3, 30, 36))] * 2
    samples = _samples(3, 3)
    for sample, g in zip(samples, gt):
        sample.gt_img = g['gt_img']
    model(x, samples, mode='loss')['loss_pix'].backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert any(n.startswith('backbone.pre.3.') for n in grads)
    assert any(n.startswith('head.upsamplers.3.') for n in grads)
    assert not any(n.startswith(('backbone.pre.2.', 'backbone.pre.4.', 'head.upsamplers.2.',
                                 'head.upsamplers.4.')) for n in grads)
    assert any(n.startswith('backbone.blocks.') for n in grads) and 'head.conv_out.weight' in grads


def test_restorer_rejects_mixed_or_unknown_scales() -> None:
    model = _mdsr()
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r'one scale, got samples at scales \[2, 3\].*'
                                         'MixedScaleBatchSampler'):
        model(x, _samples(2, 3))
    with pytest.raises(ValueError, match=r'scale 8 but this model restores scales \(2, 3, 4\)'):
        model(x, _samples(8, 8))
    single = MODELS.build(dict(type='densekit.Restorer', scale=2,
                               backbone=dict(type='densekit.EDSRBody', channels=8, num_blocks=1),
                               head=dict(type='densekit.PixelShuffleHead', in_channels=8)))
    with pytest.raises(ValueError, match=r'scale 3 but this model restores scales \(2,\)'):
        single(x, _samples(3, 3))


def test_per_scale_metrics_match_the_psnr_function() -> None:
    from densekit.tasks.restoration.metrics import psnr

    metric = METRICS.build(dict(type='densekit.PSNR', crop_border='scale', convert_to='y',
                                per_scale=True))
    rng = np.random.default_rng(0)
    rows, expected = [], collections.defaultdict(list)
    for scale in (2, 3, 2, 4):
        gt = torch.from_numpy(rng.integers(0, 256, (3, 24, 24)) / 255.0).float()
        pred = (gt + torch.from_numpy(rng.normal(0, 0.05, (3, 24, 24))).float()).clamp(0, 1)
        rows.append(dict(pred_img=pred, gt_img=gt, scale=scale))
        a = np.floor(pred.double().permute(1, 2, 0).numpy() * 255 + 0.5)
        b = np.floor(gt.double().permute(1, 2, 0).numpy() * 255 + 0.5)
        expected[scale].append(psnr(a, b, scale, 'y'))
    metric.process(None, rows)
    scores = metric.compute_metrics(metric.results)
    assert sorted(scores) == ['psnr_y_x2', 'psnr_y_x3', 'psnr_y_x4']
    for scale, values in expected.items():
        assert scores[f'psnr_y_x{scale}'] == pytest.approx(np.mean(values), abs=1e-9)
    with pytest.raises(ValueError, match="'scale'"):
        METRICS.build(dict(type='densekit.PSNR', crop_border='half'))


def test_config_trains_and_validates_every_scale(tmp_path: Path, photos: Path) -> None:
    from densekit.apis import load_config, parse_cfg_options, train

    opts = [f'{loader}.dataset.data_root={photos}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    opts += ['model.backbone.channels=8', 'model.backbone.num_blocks=1',
             'model.head.in_channels=8', 'train_cfg.max_iters=6', 'train_cfg.val_interval=6',
             'default_hooks.checkpoint.interval=6']
    cfg = load_config(str(CONFIG), parse_cfg_options(opts), str(tmp_path))
    runner = train(cfg)
    assert runner.iter == 6
    assert isinstance(runner.train_dataloader.batch_sampler, MixedScaleBatchSampler)
    metrics = runner.val_loop.run()
    assert {'psnr_y_x2', 'psnr_y_x3', 'psnr_y_x4', 'ssim_y_x2'} <= set(metrics)
    assert metrics['psnr_y_x2'] > metrics['psnr_y_x3'] > metrics['psnr_y_x4']


@pytest.mark.slow
def test_mdsr_beats_bicubic_at_every_scale_on_held_out_photos(tmp_path: Path) -> None:
    from densekit.apis import load_config, parse_cfg_options, train
    from densekit.tasks.restoration.demo import evaluate_photos

    root = generate_restoration_photos(REPO / 'data' / 'restoration' / 'photos')
    opts = [f'{loader}.dataset.data_root={root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    cfg = load_config(str(CONFIG), parse_cfg_options(opts), str(tmp_path))
    budget = [h['budget_s'] for h in cfg.custom_hooks if h['type'] == 'densekit.TimeBudgetHook']
    assert budget and budget[0] <= 300  # the gate: at most 5 minutes of training
    torch.manual_seed(0)
    runner = train(cfg)
    model, dataset = runner.model, runner.val_dataloader.dataset
    for scale in dataset.scales:
        model.scale = scale  # restore() runs the branch of model.scale
        infos = [dataset.get_data_info(i) for i in dataset.indices_of_scale(scale)]
        scores = evaluate_photos(model, infos, scale, tmp_path / f'x{scale}')
        print(f'MDSR x{scale}: PSNR-Y {scores["out"]:.2f} vs bicubic {scores["base"]:.2f} '
              f'after {runner.iter} iters (all scales)')
        assert scores['out'] > scores['base']
