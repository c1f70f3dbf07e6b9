"""Old import path of the STU-Net blocks (now :mod:`densekit.blocks.residual`)."""
from densekit.blocks.residual import DEFAULT_ACT, DEFAULT_NORM, ConvNormResBlock, UpConcat

ResBlock = ConvNormResBlock  # the name this path always had

__all__ = ['ResBlock', 'ConvNormResBlock', 'UpConcat', 'DEFAULT_NORM', 'DEFAULT_ACT']
