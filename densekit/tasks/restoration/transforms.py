"""Data transforms of the restoration task (mmcv ``BaseTransform``s in the densekit registry).

A sample is a dict with ``lq`` (degraded input) and ``gt`` (target) ``(H, W, C)`` RGB arrays
(uint8 or uint16) plus ``scale`` (1 for deraining). The pipeline of a config typically reads

    LoadPairImages -> [BicubicDegrade | AddRainStreaks] -> PairedRandomCrop
    -> PairedFlip -> PairedRandomRot90 -> PackRestorationInputs

Random choices use numpy's global generator, which mmengine seeds per worker.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from densekit.registry import TRANSFORMS
from densekit.tasks.restoration.imresize import imresize
from densekit.tasks.restoration.rain import RAIN_PRESETS, RainStyle, add_rain

__all__ = ['LoadPairImages', 'BicubicDegrade', 'AddRainStreaks', 'PairedRandomCrop',
           'PairedFlip', 'PairedRandomRot90', 'PackRestorationInputs', 'read_rgb']

Range = Union[float, Tuple[float, float]]


def read_rgb(path: str) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` RGB in its stored bit depth (alpha dropped).

    Raises:
        FileNotFoundError: The file does not exist or cannot be decoded.
    """
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(f'cannot read image {path!r} (missing or corrupt)')
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 4:
        image = image[..., :3]
    return np.ascontiguousarray(image[..., ::-1])


@TRANSFORMS.register_module()
class LoadPairImages(BaseTransform):
    """Read ``<key>_path`` into ``<key>`` for each key (RGB, stored bit depth).

    When both ``lq`` and ``gt`` are loaded, the target is cropped to ``scale`` times the input
    size (a target up to ``scale - 1`` pixels larger, as in "mod-crop", is accepted).

    Args:
        keys: Which images to load (``('gt',)`` for on-the-fly degradation).
        cache: Keep decoded images in memory (small built-in datasets read once).
    """

    def __init__(self, keys: Sequence[str] = ('lq', 'gt'), cache: bool = False) -> None:
        if not keys or any(k not in ('lq', 'gt') for k in keys):
            raise ValueError(f"keys must be a non-empty subset of ('lq', 'gt'), got {keys!r}")
        self.keys, self.cache = tuple(keys), cache
        self._cache: Dict[str, np.ndarray] = {}

    def _read(self, path: str) -> np.ndarray:
        if not self.cache:
            return read_rgb(path)
        if path not in self._cache:
            self._cache[path] = read_rgb(path)
        return self._cache[path]

    def transform(self, results: dict) -> dict:  # noqa: D102
        for key in self.keys:
            results[key] = self._read(results[f'{key}_path'])
        scale = int(results.get('scale', 1))
        if 'lq' in results and 'gt' in results:
            lh, lw = results['lq'].shape[:2]
            results['gt'] = results['gt'][:lh * scale, :lw * scale]
        image = results[self.keys[0]]
        results['max_value'] = float(np.iinfo(image.dtype).max)
        results['ori_shape'] = results.get('gt', image).shape[:2]
        return results


@TRANSFORMS.register_module()
class BicubicDegrade(BaseTransform):
    """Make ``lq`` from ``gt`` with MATLAB bicubic downsampling by ``scale``.

    The target is first cropped to a multiple of the scale ("mod-crop").

    Args:
        scale: Downsampling factor; ``None`` reads each sample's ``results['scale']`` (the
            :class:`~.multiscale.MultiScalePairedDataset` gives one per pair).
        cache: Keep the input made from each ``(gt_path, scale)`` (whole images of a small
            built-in dataset are degraded once, then cropped by ``PairedRandomCrop``).
    """

    def __init__(self, scale: Optional[int] = None, cache: bool = False) -> None:
        if scale is not None and (not isinstance(scale, int) or isinstance(scale, bool) or
                                  scale < 1):
            raise ValueError(f'scale must be an int >= 1 or None (per sample), got {scale!r}')
        self.scale, self.cache = scale, cache
        self._cache: Dict[Tuple[str, int], np.ndarray] = {}

    def transform(self, results: dict) -> dict:  # noqa: D102
        scale = self.scale
        if scale is None:
            if 'scale' not in results:
                raise KeyError("BicubicDegrade(scale=None) needs results['scale'] (from a "
                               'MultiScalePairedDataset); give scale= for other datasets')
            scale = int(results['scale'])
        gt = results['gt']
        h, w = (gt.shape[0] // scale) * scale, (gt.shape[1] // scale) * scale
        results['gt'] = gt = gt[:h, :w]
        key = (str(results.get('gt_path')), scale)
        if self.cache and key in self._cache:
            results['lq'] = self._cache[key]
        else:
            results['lq'] = imresize(gt, 1.0 / scale)
            if self.cache:
                self._cache[key] = results['lq']
        results['scale'] = scale
        return results


def _draw(value: Range, name: str, integer: bool = False) -> float:
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] > value[1]:
            raise ValueError(f'{name} must be a number or a (low, high) pair, got {value!r}')
        if integer:
            return float(np.random.randint(int(value[0]), int(value[1]) + 1))
        return float(np.random.uniform(value[0], value[1]))
    return float(value)


@TRANSFORMS.register_module()
class AddRainStreaks(BaseTransform):
    """Make ``lq`` by adding random synthetic rain to ``gt`` (see :mod:`..rain`).

    Each parameter is a number or a ``(low, high)`` range drawn per sample; unset ones come
    from ``preset``.

    Args:
        preset: ``'light'`` (Rain100L-like) or ``'heavy'`` (Rain200H-like).
        density, angle, length, intensity, layers: Overrides of the preset.
    """

    def __init__(self, preset: str = 'light', density: Optional[Range] = None,
                 angle: Optional[Range] = None, length: Optional[Range] = None,
                 intensity: Optional[Range] = None, layers: Optional[Range] = None) -> None:
        if preset not in RAIN_PRESETS:
            raise ValueError(f'preset must be one of {sorted(RAIN_PRESETS)}, got {preset!r}')
        self.preset = RAIN_PRESETS[preset]
        self.ranges = dict(density=density, angle=angle, length=length, intensity=intensity,
                           layers=layers)
        self._style()  # validate the ranges at build time

    def _style(self) -> RainStyle:
        base = self.preset
        picked: Dict[str, Any] = {}
        for name, value in self.ranges.items():
            if value is None:
                continue
            drawn = _draw(value, name, integer=name in ('length', 'layers'))
            picked[name] = int(drawn) if name in ('length', 'layers') else drawn
        fields = {**base.__dict__, **picked}
        return RainStyle(**fields)

    def transform(self, results: dict) -> dict:  # noqa: D102
        rng = np.random.default_rng(np.random.randint(0, 2**31 - 1))
        results['lq'] = add_rain(results['gt'], self._style(), rng=rng)
        results['scale'] = 1
        return results


@TRANSFORMS.register_module()
class PairedRandomCrop(BaseTransform):
    """Crop aligned random patches: ``gt_patch_size`` of ``gt``, ``gt_patch_size/scale`` of lq.

    Without an ``lq`` (degradation comes later in the pipeline) only ``gt`` is cropped.

    ``lq_patch_size`` instead fixes the input patch (the target patch is ``scale`` times it),
    so batches of every scale of a mixed-scale run cost the body the same.

    Raises:
        ValueError: Neither or both patch sizes, ``gt_patch_size`` not a multiple of the scale,
            or an image smaller than the patch (the message names the files).
    """

    def __init__(self, gt_patch_size: Optional[int] = None,
                 lq_patch_size: Optional[int] = None) -> None:
        if (gt_patch_size is None) == (lq_patch_size is None):
            raise ValueError(f'give exactly one of gt_patch_size and lq_patch_size, got '
                             f'gt_patch_size={gt_patch_size!r}, lq_patch_size={lq_patch_size!r}')
        for name, size in (('gt_patch_size', gt_patch_size), ('lq_patch_size', lq_patch_size)):
            if size is not None and (not isinstance(size, int) or size < 1):
                raise ValueError(f'{name} must be a positive int, got {size!r}')
        self.gt_patch_size, self.lq_patch_size = gt_patch_size, lq_patch_size

    def transform(self, results: dict) -> dict:  # noqa: D102
        scale = int(results.get('scale', 1))
        gt_patch = self.gt_patch_size or self.lq_patch_size * scale
        if gt_patch % scale:
            raise ValueError(f'gt_patch_size={gt_patch} must be a multiple of the '
                             f'scale {scale}')
        if 'lq' not in results:  # target only (degraded afterwards): crop it alone
            gt = results['gt']
            gh, gw = gt.shape[:2]
            size = gt_patch
            if gh < size or gw < size:
                raise ValueError(f'target {results.get("gt_path", "<gt>")!r} ({gh}x{gw}) is '
                                 f'smaller than the {size}x{size} patch')
            top, left = np.random.randint(0, gh - size + 1), np.random.randint(0, gw - size + 1)
            results['gt'] = gt[top:top + size, left:left + size]
            return results
        lq_patch = gt_patch // scale
        lq = results['lq']
        h, w = lq.shape[:2]
        if h < lq_patch or w < lq_patch:
            raise ValueError(f'input {results.get("lq_path", "<lq>")!r} ({h}x{w}) is smaller '
                             f'than the {lq_patch}x{lq_patch} patch '
                             f'(target {results.get("gt_path", "<gt>")!r})')
        gh, gw = results['gt'].shape[:2]
        if gh < h * scale or gw < w * scale:
            raise ValueError(f'target {results.get("gt_path", "<gt>")!r} ({gh}x{gw}) is smaller '
                             f'than {scale} x its input {results.get("lq_path", "<lq>")!r} '
                             f'({h}x{w})')
        top, left = np.random.randint(0, h - lq_patch + 1), np.random.randint(0, w - lq_patch + 1)
        results['lq'] = lq[top:top + lq_patch, left:left + lq_patch]
        results['gt'] = results['gt'][top * scale:(top + lq_patch) * scale,
                                      left * scale:(left + lq_patch) * scale]
        return results


@TRANSFORMS.register_module()
class PairedFlip(BaseTransform):
    """Flip ``lq`` and ``gt`` together, horizontally and/or vertically, at random."""

    def __init__(self, horizontal: float = 0.5, vertical: float = 0.5) -> None:
        for name, p in (('horizontal', horizontal), ('vertical', vertical)):
            if not 0 <= p <= 1:
                raise ValueError(f'{name} probability must be in [0, 1], got {p!r}')
        self.horizontal, self.vertical = horizontal, vertical

    def transform(self, results: dict) -> dict:  # noqa: D102
        if np.random.rand() < self.horizontal:
            results['lq'], results['gt'] = results['lq'][:, ::-1], results['gt'][:, ::-1]
        if np.random.rand() < self.vertical:
            results['lq'], results['gt'] = results['lq'][::-1], results['gt'][::-1]
        return results


@TRANSFORMS.register_module()
class PairedRandomRot90(BaseTransform):
    """Rotate ``lq`` and ``gt`` together by a random multiple of 90 degrees."""

    def transform(self, results: dict) -> dict:  # noqa: D102
        k = np.random.randint(4)
        if k:
            results['lq'] = np.rot90(results['lq'], k)
            results['gt'] = np.rot90(results['gt'], k)
        return results


@TRANSFORMS.register_module()
class PackRestorationInputs(BaseTransform):
    """Pack ``lq`` into ``inputs`` (float ``(C, H, W)``, stored values) and ``gt`` into a sample.

    The data sample holds ``gt_img`` (float ``(C, H, W)``, stored values) and the metainfo
    ``lq_path``, ``gt_path``, ``scale``, ``max_value``, ``ori_shape``; the data preprocessor
    scales both to [0, 1].
    """

    META_KEYS = ('lq_path', 'gt_path', 'scale', 'max_value', 'ori_shape', 'sample_idx')

    @staticmethod
    def _to_tensor(image: np.ndarray) -> torch.Tensor:
        chw = np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32)
        return torch.from_numpy(chw)

    def transform(self, results: dict) -> dict:  # noqa: D102
        sample = BaseDataElement(metainfo={k: results[k] for k in self.META_KEYS if k in results})
        if 'gt' in results:
            sample.gt_img = self._to_tensor(results['gt'])
        return dict(inputs=self._to_tensor(results['lq']), data_samples=sample)
