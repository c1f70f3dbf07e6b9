"""Restoration networks, by their old names: the SR / deraining bodies now live in
:mod:`densekit.backbones`, the reconstruction heads in :mod:`densekit.heads` and their blocks in
:mod:`densekit.blocks`; this package re-exports them so existing imports keep working."""
from densekit.backbones.carn import CARNBody
from densekit.backbones.drsformer import DRSformer
from densekit.backbones.edsr import EDSRBody
from densekit.backbones.fsrcnn import FSRCNNBody
from densekit.backbones.resunet import ResUNet
from densekit.backbones.scnet import SCNetBody
from densekit.blocks.edsr_block import EDSRResBlock as ResBlock
from densekit.blocks.mefc import MEFC
from densekit.blocks.shift import Shift8
from densekit.blocks.sparse_transformer import MSFN, TKSA, SparseBlock
from densekit.heads.reconstruction import (
    DIV2K_MEAN,
    DeconvHead,
    PixelShuffleHead,
    PixelShuffleUpsampler,
    ReconstructionHead,
)
from densekit.heads.shift_head import ShiftUpsampleHead
from densekit.layers import ChannelLayerNorm

__all__ = ['DIV2K_MEAN', 'ResBlock', 'PixelShuffleUpsampler', 'PixelShuffleHead', 'DeconvHead',
           'ReconstructionHead', 'EDSRBody', 'FSRCNNBody', 'CARNBody', 'SCNetBody', 'Shift8',
           'ShiftUpsampleHead', 'DRSformer', 'LayerNorm2d', 'TKSA', 'MSFN', 'SparseBlock', 'MEFC',
           'ResUNet']


class LayerNorm2d(ChannelLayerNorm):
    """The old name of DRSformer's channel LayerNorm: a :class:`ChannelLayerNorm` whose eps
    defaults to 1e-5 (use ``ChannelLayerNorm(channels, eps=1e-5)`` in new code)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__(channels, eps=eps)
