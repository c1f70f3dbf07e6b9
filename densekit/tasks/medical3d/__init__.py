"""Medical volume segmentation: 3D residual U-Nets, NIfTI data, patch training, sliding windows.

* model: :class:`ResUNetEncoder` (STU-Net scaling presets), :class:`RevUNetEncoder`
  (reversible blocks, no stored activations) or :class:`DFormerEncoder` (dilated transformer)
  + :class:`UNetDecoderHead` (deep supervision) in :class:`MedicalSegmentor`, with any
  densekit neck (FPN, ASPP) in between;
* data: :class:`MedicalVolumeDataset` (MSD / nnU-Net folders), :class:`Preprocessor`,
  transforms, :func:`generate_phantoms` (built-in data);
* evaluation: :class:`MedicalSegMetric` (per-class Dice and HD95);
* inference: :func:`sliding_window_inference` (MONAI's signature),
  :func:`sliding_window_labels`, the ``'medical'`` handler of ``densekit infer``.
"""
from densekit.accel.volumetric import fast_inference
from densekit.tasks.medical3d import infer as _infer  # noqa: F401  (registers the handler)
from densekit.tasks.medical3d.blocks import ResBlock, UpConcat
from densekit.tasks.medical3d.dataset import MedicalVolumeDataset, read_dataset_json
from densekit.tasks.medical3d.dformer import DFORMER_ARCHS, DFormerEncoder
from densekit.tasks.medical3d.losses import DiceCELoss, deep_supervision_weights
from densekit.tasks.medical3d.metrics import MedicalSegMetric, dice_score, hd95
from densekit.tasks.medical3d.nifti import read_case, write_labels
from densekit.tasks.medical3d.phantoms import generate_phantoms
from densekit.tasks.medical3d.preprocess import Preprocessor
from densekit.tasks.medical3d.reversible import (
    InvertedBottleneck,
    ReversibleCoupling,
    ReversibleSequence,
    RevUNetEncoder,
)
from densekit.tasks.medical3d.segmentor import MedicalDataPreprocessor, MedicalSegmentor
from densekit.tasks.medical3d.transforms import (
    PackMedicalInputs,
    RandomAffine3D,
    RandomFlip3D,
    RandomGamma3D,
    RandomIntensity3D,
    RandomPatch3D,
    RandomRotate90,
)
from densekit.tasks.medical3d.unet import ARCH_SETTINGS, ResUNetEncoder, UNetDecoderHead
from densekit.windowed.engine import sliding_window_inference, sliding_window_labels
from densekit.windowed.grid import importance_map

__all__ = [
    'ResBlock', 'UpConcat', 'ResUNetEncoder', 'UNetDecoderHead', 'ARCH_SETTINGS',
    'MedicalSegmentor', 'MedicalDataPreprocessor', 'DiceCELoss', 'deep_supervision_weights',
    'MedicalVolumeDataset', 'read_dataset_json', 'Preprocessor', 'read_case', 'write_labels',
    'generate_phantoms', 'RandomPatch3D', 'RandomFlip3D', 'RandomRotate90', 'RandomAffine3D',
    'RandomIntensity3D', 'RandomGamma3D', 'PackMedicalInputs', 'MedicalSegMetric', 'dice_score',
    'hd95', 'sliding_window_inference', 'sliding_window_labels', 'importance_map',
    'fast_inference', 'InvertedBottleneck', 'ReversibleCoupling', 'ReversibleSequence',
    'RevUNetEncoder', 'DFormerEncoder', 'DFORMER_ARCHS',
]
