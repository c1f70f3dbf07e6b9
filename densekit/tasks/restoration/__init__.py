"""Image restoration: super-resolution (EDSR/MDSR, FSRCNN, CARN, SCNet) and deraining
(DRSformer, residual U-Net) on mmengine, with MATLAB-bicubic and synthetic-rain degradations,
PSNR/SSIM metrics, built-in photo data and tiled inference for images of any size.

Importing the package registers every model, dataset, transform, metric and hook in the
``densekit`` scope, and the ``'sr'`` / ``'derain'`` inference handlers.
"""
from densekit.tasks.restoration import models  # noqa: F401
from densekit.tasks.restoration.dataset import PairedImageDataset
from densekit.tasks.restoration.hooks import CpuThreadsHook, TimeCosineLRHook
from densekit.tasks.restoration.imresize import imresize, imresize_tensor
from densekit.tasks.restoration.inference import restoration_handler
from densekit.tasks.restoration.losses import CharbonnierLoss, PixelL1Loss
from densekit.tasks.restoration.metrics import PSNR, SSIM, psnr, ssim
from densekit.tasks.restoration.multiscale import MixedScaleBatchSampler, MultiScalePairedDataset
from densekit.tasks.restoration.photos import generate_restoration_photos
from densekit.tasks.restoration.preprocessor import RestorationPreprocessor
from densekit.tasks.restoration.rain import RAIN_PRESETS, RainStyle, add_rain
from densekit.tasks.restoration.restorer import Restorer
from densekit.tasks.restoration.tiling import TileGrid, tiled_restore
from densekit.tasks.restoration.transforms import (
    AddRainStreaks,
    BicubicDegrade,
    LoadPairImages,
    PackRestorationInputs,
    PairedFlip,
    PairedRandomCrop,
    PairedRandomRot90,
)
from densekit.tasks.restoration.visualization import RestorationVisualizationHook

__all__ = [
    'PairedImageDataset', 'imresize', 'imresize_tensor', 'restoration_handler', 'PixelL1Loss',
    'CharbonnierLoss', 'PSNR', 'SSIM', 'psnr', 'ssim', 'generate_restoration_photos',
    'RestorationPreprocessor', 'RAIN_PRESETS', 'RainStyle', 'add_rain', 'Restorer', 'TileGrid',
    'tiled_restore', 'AddRainStreaks', 'BicubicDegrade', 'LoadPairImages',
    'PackRestorationInputs', 'PairedFlip', 'PairedRandomCrop', 'PairedRandomRot90',
    'RestorationVisualizationHook', 'TimeCosineLRHook', 'CpuThreadsHook',
    'MixedScaleBatchSampler', 'MultiScalePairedDataset',
]
