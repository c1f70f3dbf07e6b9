"""Restoration networks: SR bodies and reconstruction heads, deraining U-shapes."""
from densekit.tasks.restoration.models.carn import CARNBody
from densekit.tasks.restoration.models.common import (
    DIV2K_MEAN,
    DeconvHead,
    PixelShuffleHead,
    PixelShuffleUpsampler,
    ReconstructionHead,
    ResBlock,
)
from densekit.tasks.restoration.models.drsformer import DRSformer
from densekit.tasks.restoration.models.edsr import EDSRBody
from densekit.tasks.restoration.models.fsrcnn import FSRCNNBody
from densekit.tasks.restoration.models.mefc import MEFC
from densekit.tasks.restoration.models.resunet import ResUNet
from densekit.tasks.restoration.models.scnet import SCNetBody, Shift8, ShiftUpsampleHead
from densekit.tasks.restoration.models.transformer import MSFN, TKSA, LayerNorm2d, SparseBlock

__all__ = ['DIV2K_MEAN', 'ResBlock', 'PixelShuffleUpsampler', 'PixelShuffleHead', 'DeconvHead',
           'ReconstructionHead', 'EDSRBody', 'FSRCNNBody', 'CARNBody', 'SCNetBody', 'Shift8',
           'ShiftUpsampleHead', 'DRSformer', 'LayerNorm2d', 'TKSA', 'MSFN', 'SparseBlock', 'MEFC',
           'ResUNet']
