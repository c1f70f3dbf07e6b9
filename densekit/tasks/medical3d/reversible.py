"""Old import path of the reversible blocks and encoder (now :mod:`densekit.blocks.reversible`
and :mod:`densekit.backbones.revunet`)."""
from densekit.backbones.revunet import RevUNetEncoder
from densekit.blocks.reversible import InvertedBottleneck, ReversibleCoupling, ReversibleSequence

__all__ = ['InvertedBottleneck', 'ReversibleCoupling', 'ReversibleSequence', 'RevUNetEncoder']
