"""densekit heads (registered under the densekit scope)."""
from densekit.heads.aspp_head import ASPPHead
from densekit.heads.catanet_head import CATANetHead
from densekit.heads.lraspp_head import ContextPool, LRASPPHead
from densekit.heads.reconstruction import (
    DeconvHead,
    PixelShuffleHead,
    PixelShuffleUpsampler,
    ReconstructionHead,
)
from densekit.heads.seg_heads import DepthwiseSeparableASPPHead, DUCHead, FCNHead, FPNHead
from densekit.heads.shift_head import ShiftUpsampleHead
from densekit.heads.shuffle_head import PixelShuffleSkipHead
from densekit.heads.unet_head import UNetDecoderHead

__all__ = ['ASPPHead', 'CATANetHead', 'ContextPool', 'DepthwiseSeparableASPPHead', 'DUCHead',
           'FCNHead', 'FPNHead', 'LRASPPHead', 'PixelShuffleSkipHead', 'DeconvHead',
           'PixelShuffleHead', 'PixelShuffleUpsampler', 'ReconstructionHead', 'ShiftUpsampleHead',
           'UNetDecoderHead']
