"""Training transforms for volumes: patch sampling with foreground oversampling, 3D augmentation,
packing. Registered in ``TRANSFORMS`` (mmcv ``BaseTransform``).

Results dicts hold ``img`` ``(C, D, H, W)`` float32 and ``gt_seg`` ``(D, H, W)`` numpy arrays
(shared with the dataset cache: transforms never write into their inputs). Random draws use
numpy's global generator (kornia's parameters: torch's), which mmengine and the data loader
seed per worker.

* :class:`RandomPatch3D` - random patches; a fixed fraction (default 1/3) is centred on a
  foreground voxel of a random foreground class present in the case (nnU-Net's oversampling).
* :class:`RandomFlip3D`, :class:`RandomRotate90` - mirror / quarter turns (image and labels).
* :class:`RandomAffine3D` - small rotations and scaling with kornia's ``RandomAffine3D``;
  the labels follow with the same matrix and nearest interpolation.
* :class:`RandomIntensity3D` - brightness, contrast and Gaussian noise.
* :class:`RandomGamma3D` - gamma on the per-channel [0, 1]-rescaled intensities.
* :class:`PackMedicalInputs` - ``inputs`` tensor + ``data_samples`` (``gt_seg``, metainfo).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from densekit.registry import TRANSFORMS

__all__ = ['RandomPatch3D', 'RandomFlip3D', 'RandomRotate90', 'RandomAffine3D',
           'RandomIntensity3D', 'RandomGamma3D', 'PackMedicalInputs']


def _check_prob(prob: float, name: str = 'prob') -> float:
    if not 0 <= prob <= 1:
        raise ValueError(f'{name} must be in [0, 1], got {prob!r}')
    return float(prob)


def _pair(value: Sequence[float], name: str) -> Tuple[float, float]:
    if len(value) != 2 or value[0] > value[1]:
        raise ValueError(f'{name} must be a (low, high) pair, got {value!r}')
    return float(value[0]), float(value[1])


@TRANSFORMS.register_module()
class RandomPatch3D(BaseTransform):
    """Crop a random ``patch_size`` patch; a fixed fraction is centred on foreground.

    The fraction is exact over any run of calls: call ``k`` is a foreground patch when
    ``floor((k + 1) * fg_fraction) > floor(k * fg_fraction)``. Volumes smaller than the patch
    are padded (image with 0, labels with background).

    Args:
        patch_size: ``(D, H, W)``.
        fg_fraction: Share of patches centred on a foreground voxel.
    """

    def __init__(self, patch_size: Sequence[int], fg_fraction: float = 1 / 3) -> None:
        self.patch_size = tuple(int(p) for p in patch_size)
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise ValueError(f'patch_size must be 3 positive ints (D, H, W), got {patch_size!r}')
        self.fg_fraction = _check_prob(fg_fraction, 'fg_fraction')
        self._calls = 0

    def _wants_fg(self) -> bool:
        k, f = self._calls, self.fg_fraction
        self._calls += 1
        return int((k + 1) * f) > int(k * f)

    def transform(self, results: dict) -> dict:  # noqa: D102
        img, seg = results['img'], results['gt_seg']
        shape = seg.shape
        pad = [max(p - s, 0) for p, s in zip(self.patch_size, shape)]
        if any(pad):
            widths = [(q // 2, q - q // 2) for q in pad]
            img = np.pad(img, [(0, 0)] + widths)
            seg = np.pad(seg, widths)
            shape = seg.shape
        centre = None
        locations = results.get('fg_locations') or {}
        if self._wants_fg():
            present = [c for c, idx in locations.items() if len(idx)]
            if present:
                cls = present[np.random.randint(len(present))]
                flat = locations[cls][np.random.randint(len(locations[cls]))]
                centre = np.array(np.unravel_index(flat, results['gt_seg'].shape)) + \
                    np.array([w // 2 for w in pad])
        starts = []
        for axis, (size, p) in enumerate(zip(shape, self.patch_size)):
            if centre is None:
                starts.append(np.random.randint(0, size - p + 1))
            else:
                starts.append(int(np.clip(centre[axis] - p // 2, 0, size - p)))
        sl = tuple(slice(s, s + p) for s, p in zip(starts, self.patch_size))
        results['img'] = img[(slice(None), *sl)].copy()
        results['gt_seg'] = seg[sl].copy()
        results['patch_start'] = tuple(starts)
        results['fg_patch'] = centre is not None
        return results


@TRANSFORMS.register_module()
class RandomFlip3D(BaseTransform):
    """Mirror each spatial axis in ``axes`` independently with probability ``prob``."""

    def __init__(self, prob: float = 0.5, axes: Sequence[int] = (0, 1, 2)) -> None:
        self.prob, self.axes = _check_prob(prob), tuple(axes)

    def transform(self, results: dict) -> dict:  # noqa: D102
        for axis in self.axes:
            if np.random.rand() < self.prob:
                results['img'] = np.flip(results['img'], axis + 1).copy()
                results['gt_seg'] = np.flip(results['gt_seg'], axis).copy()
        return results


@TRANSFORMS.register_module()
class RandomRotate90(BaseTransform):
    """Rotate by k * 90 degrees in the plane of ``axes`` (k = 2 only if the plane is not square)."""

    def __init__(self, prob: float = 0.5, axes: Tuple[int, int] = (1, 2)) -> None:
        self.prob, self.axes = _check_prob(prob), tuple(axes)

    def transform(self, results: dict) -> dict:  # noqa: D102
        if np.random.rand() >= self.prob:
            return results
        a, b = self.axes
        seg = results['gt_seg']
        k = np.random.randint(1, 4) if seg.shape[a] == seg.shape[b] else 2
        results['img'] = np.rot90(results['img'], k, (a + 1, b + 1)).copy()
        results['gt_seg'] = np.rot90(seg, k, (a, b)).copy()
        return results


@TRANSFORMS.register_module()
class RandomAffine3D(BaseTransform):
    """Small rotations and scaling with kornia; labels use the same matrix, nearest-neighbour.

    Args:
        prob: Probability of applying it.
        degrees: Max rotation (degrees) about each axis.
        scale: ``(low, high)`` isotropic zoom.
    """

    def __init__(self, prob: float = 0.2, degrees: float = 15.0,
                 scale: Sequence[float] = (0.85, 1.25)) -> None:
        import kornia.augmentation as K

        self.prob = _check_prob(prob)
        self.aug = K.RandomAffine3D(degrees=float(degrees), scale=_pair(scale, 'scale'), p=1.0,
                                    align_corners=False)

    def transform(self, results: dict) -> dict:  # noqa: D102
        if np.random.rand() >= self.prob:
            return results
        from kornia.geometry.transform import warp_affine3d

        img = torch.from_numpy(np.ascontiguousarray(results['img']))[None]
        seg = torch.from_numpy(np.ascontiguousarray(results['gt_seg']).astype(np.float32))
        with torch.no_grad():
            out = self.aug(img)
            matrix = self.aug.transform_matrix[:, :3]
            seg_out = warp_affine3d(seg[None, None], matrix, tuple(seg.shape), flags='nearest',
                                    align_corners=False)
        results['img'] = out[0].numpy()
        results['gt_seg'] = seg_out[0, 0].round().numpy().astype(results['gt_seg'].dtype)
        return results


@TRANSFORMS.register_module()
class RandomIntensity3D(BaseTransform):
    """Brightness (x factor), contrast (around the mean, range kept) and Gaussian noise.

    Args:
        brightness: ``(low, high)`` multiplicative factor, applied with ``prob``.
        contrast: ``(low, high)`` factor, applied with ``prob``.
        noise_std: ``(low, high)`` std of added noise, applied with ``prob``.
        prob: Probability of each of the three.
    """

    def __init__(self, brightness: Sequence[float] = (0.75, 1.25),
                 contrast: Sequence[float] = (0.75, 1.25),
                 noise_std: Sequence[float] = (0.0, 0.1), prob: float = 0.15) -> None:
        self.brightness = _pair(brightness, 'brightness')
        self.contrast = _pair(contrast, 'contrast')
        self.noise_std = _pair(noise_std, 'noise_std')
        self.prob = _check_prob(prob)

    def transform(self, results: dict) -> dict:  # noqa: D102
        img = results['img']
        if np.random.rand() < self.prob:
            img = img * np.float32(np.random.uniform(*self.brightness))
        if np.random.rand() < self.prob:
            factor = np.float32(np.random.uniform(*self.contrast))
            mean = img.mean(axis=(1, 2, 3), keepdims=True)
            lo, hi = img.min(axis=(1, 2, 3), keepdims=True), img.max(axis=(1, 2, 3),
                                                                     keepdims=True)
            img = np.clip((img - mean) * factor + mean, lo, hi)
        if np.random.rand() < self.prob:
            std = np.random.uniform(*self.noise_std)
            img = img + np.random.normal(0, std, img.shape).astype(np.float32)
        results['img'] = img.astype(np.float32, copy=False)
        return results


@TRANSFORMS.register_module()
class RandomGamma3D(BaseTransform):
    """Gamma ``x -> x^g`` on per-channel [0, 1]-rescaled intensities, mapped back to the range.

    Args:
        gamma: ``(low, high)``; values below 1 brighten.
        prob: Probability of applying it.
    """

    def __init__(self, gamma: Sequence[float] = (0.7, 1.5), prob: float = 0.3) -> None:
        self.gamma = _pair(gamma, 'gamma')
        if self.gamma[0] <= 0:
            raise ValueError(f'gamma must be positive, got {gamma!r}')
        self.prob = _check_prob(prob)

    def transform(self, results: dict) -> dict:  # noqa: D102
        if np.random.rand() >= self.prob:
            return results
        img = results['img']
        g = np.float32(np.random.uniform(*self.gamma))
        lo = img.min(axis=(1, 2, 3), keepdims=True)
        span = np.maximum(img.max(axis=(1, 2, 3), keepdims=True) - lo, 1e-7)
        results['img'] = (((img - lo) / span) ** g * span + lo).astype(np.float32)
        return results


@TRANSFORMS.register_module()
class PackMedicalInputs(BaseTransform):
    """Pack into ``dict(inputs=(C, D, H, W) tensor, data_samples=BaseDataElement)``.

    Args:
        meta_keys: Result keys copied into the data sample's metainfo.
    """

    def __init__(self, meta_keys: Sequence[str] = ('case_id', 'spacing', 'image_paths',
                                                   'label_path')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:  # noqa: D102
        inputs = torch.from_numpy(np.ascontiguousarray(results['img'], dtype=np.float32))
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys
                                           if k in results})
        seg: Optional[Union[np.ndarray, None]] = results.get('gt_seg')
        if seg is not None:
            sample.gt_seg = torch.from_numpy(np.ascontiguousarray(seg).astype(np.int64))
        return dict(inputs=inputs, data_samples=sample)
