"""Built-in data: seeded synthetic MR-like phantoms written as NIfTI in the nnU-Net / MSD layout.

Every case is defined in world (RAS, mm) coordinates and sampled on its own voxel grid, so
labels and images agree exactly whatever the grid:

* a body (elliptic cylinder) containing an **organ** (rotated, slightly lobulated ellipsoid,
  label 1) with 1-3 spherical-ish **lesions** inside it (label 2);
* two channels: ``T2`` (lesions bright) and ``T1`` (lesions dark), each blurred slightly,
  multiplied by a smooth **bias field** and given Gaussian **noise**;
* anisotropic voxels (in-plane 1.4-1.8 mm, slices 2.2-3.0 mm by default; ``in_plane_mm`` /
  ``slice_mm`` choose others, e.g. 0.8 x 0.8 x 3 mm for strongly anisotropic data) and a
  **non-identity affine**: random axis flips / in-plane axis swap (e.g. LPS storage) and a
  small oblique rotation, with a random origin;
* ``modality='ct'``: one ``CT`` channel in Hounsfield-like units instead (air -1000, body 20,
  organ 60, lesion 120 HU, blurred, 12 HU noise, no bias field), which ``densekit plan``
  normalises with nnU-Net's global CT scheme.

Layout (what :class:`~densekit.tasks.medical3d.dataset.MedicalVolumeDataset` and nnU-Net read)::

    root/dataset.json                      channel names, labels, training list, file ending
    root/splits_final.json                 [{"train": [...], "val": [...]}] (nnU-Net format)
    root/imagesTr/phantom_000_0000.nii.gz  channel 0 (T2); _0001 = channel 1 (T1)
    root/labelsTr/phantom_000.nii.gz       uint8 labels: 0 background, 1 organ, 2 lesion
    root/imagesTs/, root/labelsTs/         held-out test cases
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Dict, List, Tuple, Union

import numpy as np

from densekit.fileio import atomic_write_bytes, atomic_write_text
from densekit.lazy import lazy_module
from densekit.tasks.medical3d.nifti import write_labels

nib = lazy_module('nibabel')
ndimage = lazy_module('scipy.ndimage')

__all__ = ['generate_phantoms', 'make_phantom', 'PHANTOM_LABELS', 'PHANTOM_CHANNELS']

PHANTOM_LABELS = {'background': 0, 'organ': 1, 'lesion': 2}
PHANTOM_CHANNELS = {'0': 'T2', '1': 'T1'}
CT_CHANNELS = {'0': 'CT'}
MODALITIES = ('mr', 'ct')
_HU = np.array([-1000.0, 20.0, 60.0, 120.0], np.float32)  # air, body, organ, lesion
GENERATOR_VERSION = 1
# intensities (T2, T1) of air, body, organ, lesion
_TISSUE = np.array([[0.0, 0.0], [0.30, 0.40], [0.55, 0.72], [0.98, 0.38]], np.float32)


def _rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    angles = np.deg2rad(rng.uniform(-max_deg, max_deg, 3))
    out = np.eye(3)
    for axis, a in enumerate(angles):
        c, s = np.cos(a), np.sin(a)
        i, j = [k for k in range(3) if k != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        out = out @ r
    return out


def _affine(rng: np.random.Generator, spacing: np.ndarray, shape: Tuple[int, ...]
            ) -> np.ndarray:
    flips = np.diag([rng.choice([-1.0, 1.0]), rng.choice([-1.0, 1.0]), 1.0])
    perm = np.eye(3)[[1, 0, 2]] if rng.random() < 0.3 else np.eye(3)
    tilt = _rotation(rng, 8.0)
    linear = tilt @ flips @ perm @ np.diag(spacing)
    centre = (np.asarray(shape) - 1) / 2.0
    out = np.eye(4)
    out[:3, :3] = linear
    out[:3, 3] = -linear @ centre + rng.normal(0, 10.0, 3)
    return out


def make_phantom(rng: np.random.Generator, fov_mm: Tuple[float, float, float] = (120., 128., 128.),
                 in_plane_mm: Tuple[float, float] = (1.4, 1.8),
                 slice_mm: Tuple[float, float] = (2.2, 3.0), modality: str = 'mr'
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One phantom: ``(image (C, X, Y, Z) float32, label (X, Y, Z) uint8, affine 4x4)``.

    ``fov_mm`` is the field of view ``(z, y, x)`` in mm; the in-plane and slice spacings are
    drawn uniformly from ``in_plane_mm`` / ``slice_mm`` (``(lo, hi)`` mm); ``modality`` is
    ``'mr'`` (2 channels, T2 and T1) or ``'ct'`` (1 channel, HU).
    """
    if modality not in MODALITIES:
        raise ValueError(f'modality must be one of {MODALITIES}, got {modality!r}')
    for name, (lo, hi) in (('in_plane_mm', in_plane_mm), ('slice_mm', slice_mm)):
        if not 0 < lo <= hi:
            raise ValueError(f'{name} must be (lo, hi) mm with 0 < lo <= hi, got '
                             f'{(lo, hi)!r}')
    in_plane = rng.uniform(*in_plane_mm)
    spacing = np.array([in_plane, in_plane, rng.uniform(*slice_mm)])
    shape = tuple(int(round(f / s)) for f, s in zip(fov_mm[::-1], spacing))
    affine = _affine(rng, spacing, shape)
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape],
                               indexing='ij'), -1)
    world = idx @ affine[:3, :3].T.astype(np.float32) + affine[:3, 3].astype(np.float32)
    world -= np.asarray(affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0) + affine[:3, 3],
                        np.float32)  # centre the anatomy in the field of view

    body = (world[..., 0] / 56.0) ** 2 + (world[..., 1] / 50.0) ** 2 <= 1.0
    centre = rng.normal(0, 4.0, 3)
    axes = np.array([rng.uniform(30, 40), rng.uniform(24, 32), rng.uniform(20, 28)])
    rot = _rotation(rng, 25.0)
    local = (world - centre) @ rot
    radius = np.sqrt(((local / axes) ** 2).sum(-1))
    theta = np.arctan2(local[..., 1], local[..., 0])
    lobes = 1.0 + 0.06 * np.sin(3 * theta + rng.uniform(0, 2 * np.pi))
    organ = radius <= lobes
    label = organ.astype(np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        r = rng.uniform(7.0, 11.0)
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        reach = max(0.0, 1.0 - (r + 3.0) / axes.min())
        pos = centre + rot @ (direction * axes * rng.uniform(0, reach))
        stretch = rng.uniform(0.8, 1.2, 3)
        lesion = (((world - pos) / (r * stretch)) ** 2).sum(-1) <= 1.0
        label[lesion & organ] = 2

    tissue = np.where(label > 0, label + 1, body.astype(np.uint8))
    coeffs = rng.normal(0, 0.15, 6)
    if modality == 'ct':
        image = ndimage.gaussian_filter(_HU[tissue], sigma=0.6)[None]
        image += rng.normal(0, 12.0, image.shape).astype(np.float32)
        return image.astype(np.float32), label, affine
    image = _TISSUE[tissue].transpose(3, 0, 1, 2).copy()  # (2, X, Y, Z)
    w = world / 60.0
    bias = np.exp(coeffs[0] * w[..., 0] + coeffs[1] * w[..., 1] + coeffs[2] * w[..., 2] +
                  coeffs[3] * w[..., 0] * w[..., 1] + coeffs[4] * w[..., 2] ** 2 +
                  coeffs[5] * w[..., 0] ** 2).astype(np.float32)
    for c in range(2):
        image[c] = ndimage.gaussian_filter(image[c], sigma=0.6) * bias
        image[c] += rng.normal(0, 0.045, image[c].shape).astype(np.float32)
    return (image * 1000).astype(np.float32), label, affine


def _write_case(root: Path, folder: str, name: str, image: np.ndarray, label: np.ndarray,
                affine: np.ndarray) -> Dict[str, str]:
    for c, channel in enumerate(image):
        img = nib.Nifti1Image(channel, affine)
        img.header.set_xyzt_units('mm')
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
        atomic_write_bytes(gzip.compress(img.to_bytes(), compresslevel=1),
                           root / f'images{folder}' / f'{name}_{c:04d}.nii.gz')
    write_labels(label, affine, img.header, str(root / f'labels{folder}' / f'{name}.nii.gz'))
    return {'image': f'./images{folder}/{name}.nii.gz', 'label': f'./labels{folder}/{name}.nii.gz'}


def generate_phantoms(root: Union[str, Path], num_train: int = 24, num_val: int = 6,
                      num_test: int = 2, seed: int = 0,
                      fov_mm: Tuple[float, float, float] = (120., 128., 128.),
                      in_plane_mm: Tuple[float, float] = (1.4, 1.8),
                      slice_mm: Tuple[float, float] = (2.2, 3.0), modality: str = 'mr') -> Path:
    """Write a phantom dataset (see the module docstring) and return its root.

    Generation is skipped when ``root/dataset.json`` records the same settings.

    Args:
        root: Output folder (e.g. ``data/phantoms``).
        num_train: Training cases.
        num_val: Validation cases (in ``imagesTr``, listed in ``splits_final.json``).
        num_test: Held-out cases in ``imagesTs`` / ``labelsTs``.
        seed: Seed; case ``i`` uses ``numpy.random.default_rng([seed, i])``.
        fov_mm: Field of view ``(z, y, x)`` mm (80 x 80 x ~46 voxels by default).
        in_plane_mm: ``(lo, hi)`` range of the in-plane spacing (mm).
        slice_mm: ``(lo, hi)`` range of the slice spacing (mm).
        modality: ``'mr'`` (T2 + T1) or ``'ct'`` (one CT channel, HU).

    Raises:
        ValueError: non-positive ``num_train`` or negative counts.
    """
    if num_train < 1 or num_val < 0 or num_test < 0:
        raise ValueError(f'need num_train >= 1 and non-negative num_val / num_test, got '
                         f'{num_train}, {num_val}, {num_test}')
    root = Path(root)
    settings = dict(version=GENERATOR_VERSION, num_train=num_train, num_val=num_val,
                    num_test=num_test, seed=seed, fov_mm=list(fov_mm))
    if (tuple(in_plane_mm), tuple(slice_mm), modality) != ((1.4, 1.8), (2.2, 3.0), 'mr'):
        settings.update(in_plane_mm=list(in_plane_mm), slice_mm=list(slice_mm),
                        modality=modality)
    meta_path = root / 'dataset.json'
    if meta_path.is_file():
        try:
            if json.loads(meta_path.read_text()).get('densekit_generator') == settings:
                return root
        except ValueError:
            pass
    training: List[Dict[str, str]] = []
    test: List[str] = []
    names = [f'phantom_{i:03d}' for i in range(num_train + num_val + num_test)]
    for i, name in enumerate(names):
        image, label, affine = make_phantom(np.random.default_rng([seed, i]), fov_mm,
                                            in_plane_mm, slice_mm, modality)
        if i < num_train + num_val:
            training.append(_write_case(root, 'Tr', name, image, label, affine))
        else:
            test.append(_write_case(root, 'Ts', name, image, label, affine)['image'])
    channels = CT_CHANNELS if modality == 'ct' else PHANTOM_CHANNELS
    splits = [{'train': names[:num_train], 'val': names[num_train:num_train + num_val]}]
    atomic_write_text(json.dumps(splits, indent=1), root / 'splits_final.json')
    dataset = {
        'name': 'densekit-phantoms', 'description': 'synthetic organ + lesion MR phantoms',
        'tensorImageSize': '4D', 'channel_names': channels,
        'modality': channels, 'labels': PHANTOM_LABELS,
        'numTraining': len(training), 'numTest': len(test), 'file_ending': '.nii.gz',
        'training': training, 'test': test, 'densekit_generator': settings,
    }
    atomic_write_text(json.dumps(dataset, indent=1), meta_path)
    return root
