"""Old location of :class:`densekit.backbones.carn.CARNBody`."""
from densekit.backbones.carn import CARNBody

__all__ = ['CARNBody']
