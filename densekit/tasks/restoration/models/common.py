"""Old location of the reconstruction heads (now :mod:`densekit.heads.reconstruction`) and of
EDSR's residual block (now :class:`densekit.blocks.edsr_block.EDSRResBlock`)."""
from densekit.blocks.edsr_block import EDSRResBlock as ResBlock
from densekit.heads.reconstruction import (
    DIV2K_MEAN,
    SR_SCALES,
    DeconvHead,
    PixelShuffleHead,
    PixelShuffleUpsampler,
    ReconstructionHead,
    check_positive,
    check_scale,
    resolve_scale,
    upsample_image,
)

__all__ = ['DIV2K_MEAN', 'SR_SCALES', 'check_scale', 'check_positive', 'resolve_scale', 'ResBlock',
           'PixelShuffleUpsampler', 'PixelShuffleHead', 'DeconvHead', 'ReconstructionHead',
           'upsample_image']
