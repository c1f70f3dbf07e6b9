"""Mixed-scale super-resolution data (MDSR, Lim et al. 2017): pairs at every scale, one scale
per batch.

:class:`MultiScalePairedDataset` lists every target once per scale, so index ``i`` is an
``(image, scale)`` pair whose data info carries ``scale``; inputs come from per-scale folders
(``lq='train/LRx{scale}'``) or are made from the same target by the pipeline
(``BicubicDegrade()`` without a fixed scale reads the sample's).

:class:`MixedScaleBatchSampler` wraps mmengine's ``DefaultSampler`` / ``InfiniteSampler`` (their
seed, shuffle flag, rank, world size and epoch) and yields batches of one scale each. In every
epoch the number of batches of each scale follows ``scale_weights`` and the scale sequence is
the same on every rank, so each optimisation step of a DDP run trains one upsampling branch::

    train_dataloader = dict(
        batch_size=4,
        sampler=dict(type='InfiniteSampler', shuffle=True),
        batch_sampler=dict(type='densekit.MixedScaleBatchSampler', scale_weights=(1, 1, 1)),
        dataset=dict(type='densekit.MultiScalePairedDataset', scales=(2, 3, 4), ...))
"""
from __future__ import annotations

import math
import os.path as osp
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import torch
from mmengine.dataset import BaseDataset
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from densekit.errors import ArgumentError, positive_int
from densekit.registry import DATA_SAMPLERS, DATASETS
from densekit.tasks.restoration.dataset import _size, list_images

__all__ = ['MultiScalePairedDataset', 'MixedScaleBatchSampler', 'apportion']

Weights = Union[Sequence[float], Mapping[int, float]]


def _check_scales(scales: Sequence[int]) -> tuple:
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence) or not scales:
        raise ArgumentError(f'scales must be a non-empty sequence of ints >= 2, got {scales!r}')
    for s in scales:
        if not isinstance(s, int) or isinstance(s, bool) or s < 2:
            raise ArgumentError(f'scales must be ints >= 2, got {s!r} in {scales!r}')
    if len(set(scales)) != len(scales):
        raise ArgumentError(f'scales must not repeat, got {scales!r}')
    return tuple(scales)


@DATASETS.register_module()
class MultiScalePairedDataset(BaseDataset):
    """Every target of ``data_prefix['gt']`` once per scale: ``len = images x scales``.

    Samples are ordered scale by scale (all x2 pairs, then all x3, ...); each data info has
    ``gt_path``, ``scale``, ``sample_idx`` and, with an ``lq`` prefix, ``lq_path``.

    Args:
        data_root: Root folder.
        data_prefix: ``dict(gt='train/GT')`` (inputs made by the pipeline from the target,
            e.g. ``BicubicDegrade()``) or ``dict(gt='val/GT', lq='val/LRx{scale}')`` (one input
            folder per scale; ``{scale}`` is replaced by each scale).
        scales: Upscaling factors, e.g. ``(2, 3, 4)``.
        pipeline: Transforms; they see ``results['scale']``.
        test_mode: Passed to mmengine's ``BaseDataset``.
        lazy_init: Defer listing the files.

    Raises:
        ArgumentError: Bad ``scales`` or ``data_prefix`` (an ``lq`` without ``{scale}``).
        FileNotFoundError: A target without its input at some scale (names both paths).
        ValueError: An input whose size is not ``target // scale`` (names both files).

    Example:
        >>> ds = MultiScalePairedDataset('data/restoration/photos', scales=(2, 3, 4),
        ...     data_prefix=dict(gt='val/GT', lq='val/LRx{scale}'))  # doctest: +SKIP
        >>> len(ds), ds.get_data_info(3)['scale']  # doctest: +SKIP
        (9, 3)
    """

    def __init__(self, data_root: str, *, data_prefix: Optional[dict] = None,
                 scales: Sequence[int] = (2, 3, 4), pipeline: Sequence = (),
                 test_mode: bool = False, lazy_init: bool = False) -> None:
        self.scales = _check_scales(scales)
        prefix = dict(data_prefix or dict(gt='GT'))
        if 'gt' not in prefix or set(prefix) - {'gt', 'lq'}:
            raise ArgumentError(f"data_prefix must have a 'gt' folder and optionally 'lq', got "
                                f'{data_prefix!r}')
        if 'lq' in prefix and '{scale}' not in str(prefix['lq']):
            raise ArgumentError(f"data_prefix['lq'] must contain '{{scale}}' (one input folder "
                                f"per scale, e.g. 'val/LRx{{scale}}'), got {prefix['lq']!r}")
        self._lq_template = prefix.pop('lq', None)
        super().__init__(data_root=data_root, data_prefix=prefix, pipeline=list(pipeline),
                         test_mode=test_mode, lazy_init=lazy_init, serialize_data=False)

    def load_data_list(self) -> List[dict]:  # noqa: D102
        gt_dir = self.data_prefix['gt']
        names = list_images(gt_dir)
        if not names:
            raise FileNotFoundError(f'no images in target folder {gt_dir!r}')
        data_list: List[dict] = []
        for scale in self.scales:
            lq_dir = None
            if self._lq_template is not None:
                lq_dir = osp.join(self.data_root, self._lq_template.format(scale=scale))
            for name in names:
                info = dict(gt_path=osp.join(gt_dir, name), scale=scale,
                            sample_idx=len(data_list))
                if lq_dir is not None:
                    info['lq_path'] = lq_path = osp.join(lq_dir, name)
                    if not osp.isfile(lq_path):
                        raise FileNotFoundError(f"target {info['gt_path']!r} has no x{scale} "
                                                f'input: {lq_path!r} does not exist')
                    (gh, gw), (lh, lw) = _size(info['gt_path']), _size(lq_path)
                    if (lh, lw) != (gh // scale, gw // scale):
                        raise ValueError(f'input {lq_path!r} is {lh}x{lw} but target '
                                         f"{info['gt_path']!r} is {gh}x{gw}; at scale {scale} "
                                         f'the input must be {gh // scale}x{gw // scale}')
                data_list.append(info)
        return data_list

    def indices_of_scale(self, scale: int) -> List[int]:
        """Dataset indices of the pairs at ``scale``."""
        if scale not in self.scales:
            raise ValueError(f'this dataset has scales {self.scales}, got {scale!r}')
        return [i for i in range(len(self)) if self.get_data_info(i)['scale'] == scale]


def apportion(total: int, weights: Sequence[float]) -> List[int]:
    """Split ``total`` into integer parts proportional to ``weights`` (largest remainder).

    Example:
        >>> apportion(10, [1, 1, 1])
        [4, 3, 3]
    """
    norm = float(sum(weights))
    exact = [total * w / norm for w in weights]
    parts = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (parts[i] - exact[i], i))
    for i in by_remainder[:total - sum(parts)]:
        parts[i] += 1
    return parts


def _interleave(counts: Sequence[int]) -> List[int]:
    """Smooth weighted round-robin: positions ``0..len(counts)-1`` spread as evenly as their
    counts allow (``[2, 1] -> [0, 1, 0]``)."""
    total = sum(counts)
    credit = [0] * len(counts)
    left = list(counts)
    order = []
    for _ in range(total):
        for i, c in enumerate(counts):
            if left[i]:
                credit[i] += c
        pick = max((i for i in range(len(counts)) if left[i]), key=lambda i: (credit[i], -i))
        credit[pick] -= total
        left[pick] -= 1
        order.append(pick)
    return order


@DATA_SAMPLERS.register_module()
class MixedScaleBatchSampler(Sampler):
    """Batches of one scale each, scales mixed per batch with configurable weights.

    Every epoch is planned identically on all ranks from ``seed + epoch``:

    1. the indices of each scale are grouped (from the data infos' ``scale``) and shuffled if
       the wrapped sampler shuffles;
    2. the epoch has ``sum_s ceil(n_s / (batch_size * world_size))`` steps (``floor`` with
       ``drop_last``); the steps are split among the scales in proportion to
       ``scale_weights`` (default: to the number of pairs of each scale, so that one epoch
       sees every pair once, with the last batch of a scale topped up from its start, as
       mmengine's ``DefaultSampler`` rounds up);
    3. ``schedule='shuffle'`` puts the steps in a random order; ``'cycle'`` interleaves the
       scales evenly (x2, x3, x4, x2, ... for equal weights);
    4. each step takes the next ``batch_size * world_size`` indices of its scale (cycling
       through reshuffled copies when the weights ask for more than the scale has) and rank
       ``r`` gets the ``r``-th ``batch_size`` of them, so ranks are disjoint and together
       cover the step's global batch.

    Wrapping an ``InfiniteSampler`` makes the iterator endless (epoch after epoch, no epoch
    boundaries for ``IterBasedTrainLoop`` to pause at); wrapping a ``DefaultSampler`` yields
    one epoch and follows its ``set_epoch``.

    Args:
        sampler: The wrapped mmengine sampler (the runner passes the dataloader's ``sampler``);
            its ``dataset`` must give a ``scale`` in every data info (a
            :class:`MultiScalePairedDataset`, or mmengine's ``ConcatDataset`` of
            ``PairedImageDataset``s of different scales).
        batch_size: Samples per rank and batch (the runner passes the dataloader's).
        scale_weights: Relative number of batches per scale: a sequence aligned with the
            dataset's sorted scales, or a ``{scale: weight}`` mapping. ``None``: proportional to
            the pairs of each scale.
        schedule: ``'shuffle'`` or ``'cycle'`` (see above).
        drop_last: Drop each scale's last incomplete global batch instead of topping it up.
        infinite: Endless iteration; ``None`` decides from the wrapped sampler (endless for
            mmengine's ``InfiniteSampler``).

    Raises:
        ArgumentError: Bad ``batch_size``, ``scale_weights`` (wrong length, negative, all zero,
            unknown scale), ``schedule``, or a dataset without ``scale`` in its data infos.
    """

    SCHEDULES = ('shuffle', 'cycle')

    def __init__(self, sampler: Sampler, batch_size: int, scale_weights: Optional[Weights] = None,
                 schedule: str = 'shuffle', drop_last: bool = False,
                 infinite: Optional[bool] = None) -> None:
        positive_int(batch_size, 'batch_size')
        if schedule not in self.SCHEDULES:
            raise ArgumentError(f'schedule must be one of {self.SCHEDULES}, got {schedule!r}')
        dataset = getattr(sampler, 'dataset', None)
        if dataset is None:
            raise ArgumentError(f'sampler must be an mmengine sampler with a .dataset '
                                f'(DefaultSampler or InfiniteSampler), got {sampler!r}')
        self.sampler, self.batch_size = sampler, batch_size
        self.schedule, self.drop_last = schedule, bool(drop_last)
        if infinite is None:
            from mmengine.dataset import InfiniteSampler
            infinite = isinstance(sampler, InfiniteSampler)
        self.infinite = bool(infinite)
        rank, world_size = get_dist_info()
        self.rank = getattr(sampler, 'rank', rank)
        self.world_size = getattr(sampler, 'world_size', world_size)
        seed = getattr(sampler, 'seed', None)
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.shuffle = bool(getattr(sampler, 'shuffle', True))
        self._epoch = 0
        self.groups = self._group_by_scale(dataset)
        self.scales = tuple(sorted(self.groups))
        self.weights = self._check_weights(scale_weights)
        self.steps = self._steps_per_scale(scale_weights is None)

    @staticmethod
    def _group_by_scale(dataset: Any) -> Dict[int, List[int]]:
        if not callable(getattr(dataset, 'get_data_info', None)):
            raise ArgumentError(f'MixedScaleBatchSampler needs a dataset with get_data_info() '
                                f'(an mmengine BaseDataset or ConcatDataset), got '
                                f'{type(dataset).__name__}')
        groups: Dict[int, List[int]] = {}
        for index in range(len(dataset)):
            info = dataset.get_data_info(index)
            if 'scale' not in info:
                raise ArgumentError(f"data info {index} of {type(dataset).__name__} has no "
                                    f"'scale' (keys: {sorted(info)}); MixedScaleBatchSampler "
                                    'needs a MultiScalePairedDataset or scale-tagged pairs')
            groups.setdefault(int(info['scale']), []).append(index)
        if not groups:
            raise ArgumentError('MixedScaleBatchSampler got an empty dataset')
        return groups

    def _check_weights(self, weights: Optional[Weights]) -> List[float]:
        if weights is None:
            return [float(len(self.groups[s])) for s in self.scales]
        if isinstance(weights, Mapping):
            unknown = sorted(set(weights) - set(self.scales))
            if unknown:
                raise ArgumentError(f'scale_weights names scales {unknown} that the dataset does '
                                    f'not have (its scales: {self.scales})')
            values = [weights.get(s, 0.0) for s in self.scales]
        elif isinstance(weights, Sequence) and not isinstance(weights, (str, bytes)):
            if len(weights) != len(self.scales):
                raise ArgumentError(f'scale_weights has {len(weights)} entries but the dataset has '
                                    f'{len(self.scales)} scales {self.scales}; give one weight '
                                    'per scale or a {scale: weight} dict')
            values = list(weights)
        else:
            raise ArgumentError(f'scale_weights must be a sequence or a {{scale: weight}} dict, '
                                f'got {weights!r}')
        for s, w in zip(self.scales, values):
            if not isinstance(w, (int, float)) or isinstance(w, bool) or not w >= 0 or \
                    math.isinf(w):
                raise ArgumentError(f'scale_weights must be finite numbers >= 0, got {w!r} for '
                                    f'x{s}')
        if sum(values) <= 0:
            raise ArgumentError(f'scale_weights must not all be zero, got {weights!r}')
        return [float(w) for w in values]

    def _steps_per_scale(self, natural_split: bool) -> List[int]:
        step = self.batch_size * self.world_size
        rounding = math.floor if self.drop_last else math.ceil
        natural = [rounding(len(self.groups[s]) / step) for s in self.scales]
        total = sum(natural)
        if total == 0:
            raise ArgumentError(f'drop_last leaves no batch: every scale has fewer than '
                                f'batch_size x world_size = {step} pairs')
        return natural if natural_split else apportion(total, self.weights)

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return sum(self.steps)

    def set_epoch(self, epoch: int) -> None:
        """Plan the next (finite) iteration as epoch ``epoch`` (forwarded to the sampler)."""
        self._epoch = epoch
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)

    def scale_schedule(self, epoch: int) -> List[int]:
        """The scale of each step of ``epoch`` (the same on every rank)."""
        return [self.scales[i] for i in self._order(self._generator(epoch))]

    def _generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed + epoch)

    def _order(self, g: torch.Generator) -> List[int]:
        if self.schedule == 'cycle':
            return _interleave(self.steps)
        order = [i for i, n in enumerate(self.steps) for _ in range(n)]
        return [order[j] for j in torch.randperm(len(order), generator=g).tolist()]

    def _stream(self, indices: List[int], g: torch.Generator) -> Iterator[int]:
        while True:
            if self.shuffle:
                yield from (indices[j] for j in torch.randperm(len(indices), generator=g).tolist())
            else:
                yield from indices

    def _epoch_batches(self, epoch: int) -> Iterator[List[int]]:
        g = self._generator(epoch)
        order = self._order(g)
        step = self.batch_size * self.world_size
        streams = []
        for i, scale in enumerate(self.scales):
            stream = self._stream(self.groups[scale], g)
            streams.append([next(stream) for _ in range(self.steps[i] * step)])
        taken = [0] * len(self.scales)
        lo = self.rank * self.batch_size
        for i in order:
            chunk = streams[i][taken[i]:taken[i] + step]
            taken[i] += step
            yield chunk[lo:lo + self.batch_size]

    def __iter__(self) -> Iterator[List[int]]:
        if not self.infinite:  # the wrapped DefaultSampler's epoch (DistSamplerSeedHook sets it)
            yield from self._epoch_batches(getattr(self.sampler, 'epoch', self._epoch))
            return
        epoch = 0
        while True:
            yield from self._epoch_batches(epoch)
            epoch += 1
