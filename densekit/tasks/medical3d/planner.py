"""Automatic plan for volume segmentation (``densekit plan``), following nnU-Net's rules.

From a dataset fingerprint (:mod:`~.fingerprint`) the planner decides:

* **Target spacing** (:func:`target_spacing`): the median spacing per axis; when the data is
  anisotropic - the coarsest axis' median spacing is more than :data:`ANISO_THRESHOLD` times
  the next coarsest *and* its median size is less than ``1 / ANISO_THRESHOLD`` of the smallest
  other one - that axis takes the 10th percentile of its spacings instead (but at least the
  largest other spacing).
* **Normalisation** (:func:`normalization_plan`): ``CT`` channels (``dataset.json`` names) get
  the global scheme (clip to the dataset's foreground 0.5 / 99.5 percentiles, z-score with the
  foreground mean and std); every other channel a per-case z-score.
* **Topology** (:func:`pool_and_conv_props`): nnU-Net's pooling rule - an axis is pooled while
  its size is at least ``2 * 4`` and its spacing within a factor 2 of the finest one (a lone
  axis needs ``3 * 4``); a conv kernel is 3 along an axis once its spacing is within a factor
  2 of the finest, else 1; the patch is rounded up to a multiple of the total stride.
* **Patch size** (:func:`initial_patch_size`): a 256^3-voxel-volume patch shaped like the
  voxel spacing (``1 / spacing``), capped by the median shape after resampling, shrunk
  along the axis that is largest relative to the median shape until the network fits.
* **Memory** (:func:`measure_footprint`): the footprint is measured, not guessed: the
  network of the config (same stages, strides, kernels, loss) runs a forward + backward at
  two small patches on the CPU and the profiler's peak of live tensor memory is taken
  (widths divided by ``width_divisor`` for the big presets). The slope between the two
  sizes is the activation memory per voxel (tiny patches under-represent it, so one size
  is not enough), scaled by the width divisor; the training state (weights, gradients, two
  AdamW moments: 16 bytes per parameter) is counted exactly.
* **Batch size**: as many patches as fit the budget, at most 5 % of the dataset's voxels per
  batch, at least 2 (nnU-Net's limits).
* **STU-Net preset** (:func:`plan_dataset`): the largest of ``small`` / ``base`` / ``large``
  / ``huge`` that trains the initial patch at batch 2 inside the budget (``small`` with a
  smaller patch if none does); ``cpu=True`` plans the ``tiny`` CPU preset with at most
  :data:`CPU_PATCH_VOXELS` voxels per patch (shrunk by the same rule) and batch 2: on a CPU
  the compute, not the memory, is the limit.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from densekit.tasks.medical3d.preprocess import scheme_for_channel

__all__ = ['ANISO_THRESHOLD', 'FEATUREMAP_MIN_EDGE', 'CPU_PATCH_VOXELS', 'Topology',
           'Footprint', 'target_spacing', 'pool_and_conv_props', 'initial_patch_size',
           'resampled_shape', 'normalization_plan', 'measure_footprint', 'network_topology',
           'plan_dataset', 'GPU_PRESETS']

ANISO_THRESHOLD = 3.0
FEATUREMAP_MIN_EDGE = 4
CPU_PATCH_VOXELS = 48 ** 3  # the hand-written CPU configs' patch
GPU_PRESETS = ('small', 'base', 'large', 'huge')
USABLE_FRACTION = 0.85  # of the budget: CUDA context, cuDNN workspaces, fragmentation
MIN_BATCH = 2
DATASET_FRACTION = 0.05


def _spacings(values: Any, argname: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 1 or not np.all(arr > 0):
        raise ValueError(f'{argname} must be a non-empty (cases, axes) array of positive '
                         f'values, got shape {arr.shape}')
    return arr


def target_spacing(spacings: Sequence[Sequence[float]], shapes: Sequence[Sequence[int]],
                   threshold: float = ANISO_THRESHOLD) -> Tuple[Tuple[float, ...], bool]:
    """nnU-Net's full-resolution target spacing (see the module docstring).

    Args:
        spacings: Per case, the spacing of each axis (mm).
        shapes: Per case, the shape after cropping (same axis order).
        threshold: Anisotropy threshold (3 in nnU-Net).

    Returns:
        ``(target spacing, anisotropic)``.

    Example:
        >>> target_spacing([[3.0, 0.8, 0.8], [5.0, 0.8, 0.8], [4.0, 0.7, 0.7]],
        ...                [[30, 300, 300]] * 3)
        ((3.2, 0.8, 0.8), True)
    """
    spacings = _spacings(spacings, 'spacings')
    sizes = _spacings(shapes, 'shapes')
    if sizes.shape != spacings.shape:
        raise ValueError(f'spacings {spacings.shape} and shapes {sizes.shape} must match')
    target = np.percentile(spacings, 50, axis=0)
    target_size = np.percentile(sizes, 50, axis=0)
    worst = int(np.argmax(target))
    others = [i for i in range(len(target)) if i != worst]
    other_spacings = [target[i] for i in others]
    other_sizes = [target_size[i] for i in others]
    aniso_spacing = target[worst] > threshold * max(other_spacings)
    aniso_voxels = target_size[worst] * threshold < min(other_sizes)
    anisotropic = bool(aniso_spacing and aniso_voxels)
    if anisotropic:
        low = float(np.percentile(spacings[:, worst], 10))
        if low < max(other_spacings):
            low = max(max(other_spacings), low) + 1e-5
        target[worst] = low
    return tuple(float(round(t, 6)) for t in target), anisotropic


def resampled_shape(shape: Sequence[int], spacing: Sequence[float],
                    new_spacing: Sequence[float]) -> Tuple[int, ...]:
    """``round(shape * spacing / new_spacing)`` per axis (nnU-Net's ``compute_new_shape``)."""
    return tuple(int(round(n * s / t)) for n, s, t in zip(shape, spacing, new_spacing))


@dataclass
class Topology:
    """nnU-Net's network topology for a spacing and patch size.

    Attributes:
        num_pool_per_axis: Pooling steps per axis.
        pool_op_kernel_sizes: Stride of every stage (stage 0: all 1).
        conv_kernel_sizes: Conv kernel of every stage (the last, the bottleneck, is all 3).
        patch_size: The patch rounded up to a multiple of ``must_be_divisible_by``.
        must_be_divisible_by: Total stride per axis.
    """

    num_pool_per_axis: List[int]
    pool_op_kernel_sizes: List[List[int]]
    conv_kernel_sizes: List[List[int]]
    patch_size: List[int]
    must_be_divisible_by: List[int]


def pool_and_conv_props(spacing: Sequence[float], patch_size: Sequence[int],
                        min_feature_map_size: int = FEATUREMAP_MIN_EDGE,
                        max_numpool: int = 999999) -> Topology:
    """Pooling and conv kernels per stage by nnU-Net's rule (see the module docstring).

    Example:
        >>> t = pool_and_conv_props((3.0, 0.8, 0.8), (20, 160, 160))
        >>> t.num_pool_per_axis, t.conv_kernel_sizes[0]
        ([2, 5, 5], [1, 3, 3])
    """
    dim = len(spacing)
    if len(patch_size) != dim or min(spacing) <= 0 or min(patch_size) < 1:
        raise ValueError(f'spacing {tuple(spacing)} and patch_size {tuple(patch_size)} must '
                         f'have the same length, with positive values')
    current_spacing = [float(s) for s in spacing]
    current_size = [int(n) for n in patch_size]
    pool_kernels: List[List[int]] = [[1] * dim]
    conv_kernels: List[List[int]] = []
    num_pool = [0] * dim
    kernel = [1] * dim
    while True:
        valid = [i for i in range(dim) if current_size[i] >= 2 * min_feature_map_size]
        if not valid:
            break
        finest = min(current_spacing[i] for i in valid)
        valid = [i for i in valid if current_spacing[i] / finest < 2]
        valid = [i for i in valid if num_pool[i] < max_numpool]
        if len(valid) == 1 and current_size[valid[0]] < 3 * min_feature_map_size:
            break
        if not valid:
            break
        for d in range(dim):
            if kernel[d] != 3 and current_spacing[d] / min(current_spacing) < 2:
                kernel[d] = 3
        stride = [1] * dim
        for v in valid:
            stride[v] = 2
            num_pool[v] += 1
            current_spacing[v] *= 2
            current_size[v] = int(math.ceil(current_size[v] / 2))
        pool_kernels.append(stride)
        conv_kernels.append(list(kernel))
    divisible = [2 ** n for n in num_pool]
    padded = [int(math.ceil(n / d) * d) for n, d in zip(patch_size, divisible)]
    conv_kernels.append([3] * dim)
    return Topology(num_pool, pool_kernels, conv_kernels, padded, divisible)


def initial_patch_size(spacing: Sequence[float], median_shape: Sequence[float]
                       ) -> List[int]:
    """nnU-Net's starting patch: 256^3 voxels shaped like ``1 / spacing``, capped by the median
    shape (after resampling).

    Example:
        >>> initial_patch_size((1.0, 1.0, 1.0), (300, 300, 300))
        [256, 256, 256]
    """
    inv = 1.0 / np.asarray(spacing, np.float64)
    dim = len(inv)
    patch = [int(round(v)) for v in inv * (256.0 ** dim / np.prod(inv)) ** (1.0 / dim)]
    return [int(min(p, m)) for p, m in zip(patch, median_shape)]


def normalization_plan(fingerprint: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Per channel: ``{'channel', 'scheme', 'stats'}`` (stats only for CT's global scheme)."""
    out = []
    for name, stats in zip(fingerprint['channel_names'], fingerprint['intensity']):
        scheme = scheme_for_channel(name)
        entry: Dict[str, Any] = dict(channel=name, scheme=scheme, stats=None)
        if scheme == 'ct':
            entry['stats'] = {k: stats[k] for k in ('mean', 'std', 'percentile_00_5',
                                                    'percentile_99_5')}
        out.append(entry)
    return out


# -- network and its measured footprint ---------------------------------------------------------
def network_topology(arch: str, topology: Topology) -> Dict[str, Any]:
    """Stages, strides and kernels of the preset ``arch`` for an nnU-Net topology.

    A preset with fewer stages than the topology keeps its first pooling steps; a topology
    with fewer pooling steps uses that many stages of the preset.
    """
    from densekit.tasks.medical3d.unet import ARCH_SETTINGS

    if arch not in ARCH_SETTINGS:
        raise ValueError(f'arch must be one of {sorted(ARCH_SETTINGS)}, got {arch!r}')
    max_stages = len(ARCH_SETTINGS[arch]['widths'])
    stages = max(2, min(max_stages, len(topology.pool_op_kernel_sizes)))
    strides = [list(s) for s in topology.pool_op_kernel_sizes[1:stages]]
    while len(strides) < stages - 1:  # a patch too small to pool: keep 2 stages anyway
        strides.append([1] * len(topology.patch_size))
    kernels = [list(k) for k in topology.conv_kernel_sizes[:stages]]
    while len(kernels) < stages:
        kernels.append([3] * len(topology.patch_size))
    widths = list(ARCH_SETTINGS[arch]['widths'][:stages])
    depths = list(ARCH_SETTINGS[arch]['depths'][:stages])
    total = [int(np.prod([s[a] for s in strides])) for a in range(len(topology.patch_size))]
    return dict(arch=arch, num_stages=stages, widths=widths, depths=depths, strides=strides,
                kernel_sizes=kernels, total_stride=total)


def model_config(network: Dict[str, Any], in_channels: int, num_classes: int,
                 widths: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """The ``model`` dict of a planned config (``widths`` overrides the preset's)."""
    widths = list(widths if widths is not None else network['widths'])
    return dict(
        type='MedicalSegmentor',
        backbone=dict(type='ResUNetEncoder', in_channels=in_channels, arch=network['arch'],
                      num_stages=network['num_stages'], widths=widths,
                      depths=list(network['depths']), strides=network['strides'],
                      kernel_sizes=network['kernel_sizes']),
        decode_head=dict(type='UNetDecoderHead', in_channels=widths, num_classes=num_classes,
                         kernel_sizes=network['kernel_sizes'][:-1]),
        loss=dict(type='DiceCELoss', batch_dice=True))


@dataclass
class Footprint:
    """Measured training memory of a network.

    Attributes:
        params: Parameter count (exact).
        state_bytes: Weights, gradients and two AdamW moments (16 bytes per parameter).
        activation_bytes_per_voxel: Peak forward + backward memory per patch voxel of one
            sample (measured slope, scaled to the full width).
        activation_offset_bytes: Per sample, what the peak holds beyond the slope at the
            measured sizes (clamped at 0, so the estimate errs on the safe side).
        measured_patch: Patch sizes of the two measurements.
        width_divisor: Widths were divided by this for the measurement.
    """

    params: int
    state_bytes: int
    activation_bytes_per_voxel: float
    activation_offset_bytes: float
    measured_patch: List[List[int]]
    width_divisor: int
    extra: Dict[str, Any] = field(default_factory=dict)

    def bytes(self, patch_size: Sequence[int], batch_size: int) -> float:
        """Estimated training memory of ``batch_size`` patches of ``patch_size``."""
        per_sample = self.activation_offset_bytes + \
            self.activation_bytes_per_voxel * float(np.prod(patch_size))
        return self.state_bytes + batch_size * per_sample


def _width_divisor(widths: Sequence[int]) -> int:
    divisor = max(1, widths[0] // 8)
    while divisor > 1 and any(w % divisor for w in widths):
        divisor -= 1
    return divisor


def _train_step_peak_bytes(model_cfg: Dict[str, Any], in_channels: int, num_classes: int,
                           patch: Sequence[int]) -> float:
    import torch
    from mmengine.structures import BaseDataElement

    from densekit.analysis.memory import peak_memory_mb
    from densekit.registry import MODELS

    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(model_cfg)).train()
    x = torch.randn(1, in_channels, *patch)
    target = torch.randint(0, num_classes, tuple(patch))
    samples = [BaseDataElement(gt_seg=target)]
    grads = sum(p.numel() * p.element_size() for p in model.parameters())

    def step() -> None:
        losses = model.loss(x, samples)
        sum(v for v in losses.values()).backward()

    step()  # warm-up: lazy allocations (oneDNN primitives) stay out of the measurement
    model.zero_grad(set_to_none=True)
    peak = peak_memory_mb(step, 'cpu') * 2 ** 20
    return max(peak - grads, 0.0)


def measure_footprint(network: Dict[str, Any], in_channels: int, num_classes: int,
                      measure_patch: Optional[Sequence[int]] = None) -> Footprint:
    """Measure the training memory of a planned network (see the module docstring).

    Args:
        network: :func:`network_topology` output.
        in_channels: Image channels.
        num_classes: Classes including background.
        measure_patch: The smaller patch of the two measurements (default: twice the total
            stride per axis, at least 16); the larger adds a multiple of the total stride of at
            least 8 voxels per axis. Smaller patches under-represent the activations.
    """
    import torch
    from mmengine.registry import init_default_scope

    import densekit  # noqa: F401  (registers the models)
    from densekit.registry import MODELS

    init_default_scope('densekit')
    cfg = model_config(network, in_channels, num_classes)
    with torch.device('meta'):
        params = sum(p.numel() for p in MODELS.build(copy.deepcopy(cfg)).parameters())
    divisor = _width_divisor(network['widths'])
    small = model_config(network, in_channels, num_classes,
                         [w // divisor for w in network['widths']])
    stride = network['total_stride']
    first = list(measure_patch) if measure_patch is not None else \
        [max(2 * t, 16) for t in stride]
    second = [p + t * max(1, -(-8 // t)) for p, t in zip(first, stride)]  # + >= 8 voxels
    peaks = [_train_step_peak_bytes(small, in_channels, num_classes, p) for p in (first, second)]
    volumes = [float(np.prod(p)) for p in (first, second)]
    slope = max((peaks[1] - peaks[0]) / (volumes[1] - volumes[0]), peaks[1] / volumes[1])
    offset = max(peaks[1] - slope * volumes[1], 0.0)
    return Footprint(int(params), int(params) * 16, float(slope * divisor),
                     float(offset * divisor), [first, second], divisor)


# -- the plan ------------------------------------------------------------------------------------
def _shrink(spacing: Sequence[float], patch: List[int], median_shape: Sequence[float],
            topo: Topology) -> Tuple[List[int], Topology]:
    """One nnU-Net reduction step: the axis largest relative to the median shape shrinks by
    the total stride (of the topology the smaller patch would get)."""
    axis = int(np.argsort([p / m for p, m in zip(patch, median_shape)])[-1])
    trial = list(patch)
    trial[axis] -= topo.must_be_divisible_by[axis]
    trial[axis] = max(trial[axis], 1)
    divisible = pool_and_conv_props(spacing, trial).must_be_divisible_by
    patch = list(patch)
    patch[axis] = max(patch[axis] - divisible[axis], 1)
    topo = pool_and_conv_props(spacing, patch)
    return topo.patch_size, topo


class _Measured:
    """Footprints by network layout (one measurement per distinct layout)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        self.in_channels, self.num_classes = in_channels, num_classes
        self.cache: Dict[str, Footprint] = {}

    def __call__(self, network: Dict[str, Any]) -> Footprint:
        key = repr((network['arch'], network['num_stages'], network['strides'],
                    network['kernel_sizes']))
        if key not in self.cache:
            self.cache[key] = measure_footprint(network, self.in_channels, self.num_classes)
        return self.cache[key]


def _fit(arch: str, spacing: Sequence[float], median_shape: Sequence[float], usable: float,
         measured: _Measured, max_voxels: Optional[int]) -> Dict[str, Any]:
    patch = initial_patch_size(spacing, median_shape)
    topo = pool_and_conv_props(spacing, patch)
    patch = topo.patch_size
    shrunk = 0
    while True:
        network = network_topology(arch, topo)
        foot = measured(network)
        fits = foot.bytes(patch, MIN_BATCH) <= usable and \
            (max_voxels is None or np.prod(patch) <= max_voxels)
        if fits or all(p <= 2 * FEATUREMAP_MIN_EDGE for p in patch):
            break
        smaller, topo_smaller = _shrink(spacing, patch, median_shape, topo)
        if smaller == patch:  # padding to the stride gave the same patch: cannot shrink
            break
        patch, topo = smaller, topo_smaller
        shrunk += 1
    return dict(arch=arch, patch=[int(p) for p in patch], topology=topo, network=network,
                footprint=foot, shrunk=shrunk, fits=bool(fits))


def plan_dataset(fingerprint: Dict[str, Any], gpu_memory_gb: Optional[float] = 8.0,
                 cpu: bool = False, cpu_memory_gb: float = 4.0) -> Dict[str, Any]:
    """The plan (JSON-ready) of a fingerprint (see the module docstring).

    Args:
        fingerprint: :func:`~.fingerprint.fingerprint_dataset` output.
        gpu_memory_gb: GPU memory budget (GB); ignored with ``cpu``.
        cpu: Plan for CPU training: the ``tiny`` preset, at most :data:`CPU_PATCH_VOXELS`
            voxels per patch, ``cpu_memory_gb`` of memory.
        cpu_memory_gb: Memory budget of a CPU plan.
    """
    budget = cpu_memory_gb if cpu else gpu_memory_gb
    if budget is None or not isinstance(budget, (int, float)) or not budget > 0:
        raise ValueError(f'memory budget must be a positive number of GB, got {budget!r}')
    spacing, anisotropic = target_spacing(fingerprint['spacings'],
                                          fingerprint['shapes_after_crop'])
    shapes = [resampled_shape(s, sp, spacing) for s, sp in
              zip(fingerprint['shapes_after_crop'], fingerprint['spacings'])]
    median_shape = np.median(np.asarray(shapes, np.float64), 0)
    in_channels = len(fingerprint['channel_names'])
    num_classes = len(fingerprint['classes'])
    usable = budget * 2 ** 30 * USABLE_FRACTION
    measured = _Measured(in_channels, num_classes)
    if cpu:
        choice = _fit('tiny', spacing, median_shape, usable, measured, CPU_PATCH_VOXELS)
    else:
        topo = pool_and_conv_props(spacing, initial_patch_size(spacing, median_shape))
        arch = next((name for name in reversed(GPU_PRESETS)
                     if measured(network_topology(name, topo)).bytes(topo.patch_size, MIN_BATCH)
                     <= usable), GPU_PRESETS[0])
        choice = _fit(arch, spacing, median_shape, usable, measured, None)
    foot: Footprint = choice['footprint']
    patch = choice['patch']
    per_sample = foot.bytes(patch, 1) - foot.state_bytes
    batch = int((usable - foot.state_bytes) // max(per_sample, 1.0))
    dataset_voxels = float(np.prod(median_shape)) * len(shapes)
    cap = int(round(dataset_voxels * DATASET_FRACTION / float(np.prod(patch))))
    batch = MIN_BATCH if cpu else max(min(batch, cap), MIN_BATCH)
    topo: Topology = choice['topology']
    return dict(
        target_spacing=list(spacing), anisotropic=anisotropic,
        median_shape_after_resampling=[float(m) for m in median_shape],
        normalization=normalization_plan(fingerprint),
        patch_size=patch, batch_size=batch,
        network=dict(choice['network'], num_pool_per_axis=topo.num_pool_per_axis,
                     pool_op_kernel_sizes=topo.pool_op_kernel_sizes,
                     conv_kernel_sizes=topo.conv_kernel_sizes),
        memory=dict(device='cpu' if cpu else 'gpu', budget_gb=float(budget),
                    usable_fraction=USABLE_FRACTION,
                    estimated_gb=round(foot.bytes(patch, batch) / 2 ** 30, 3),
                    params=foot.params, state_bytes=foot.state_bytes,
                    activation_bytes_per_voxel=round(foot.activation_bytes_per_voxel, 2),
                    measured_patch=foot.measured_patch, width_divisor=foot.width_divisor,
                    fits=choice['fits'], patch_shrink_steps=choice['shrunk']))
