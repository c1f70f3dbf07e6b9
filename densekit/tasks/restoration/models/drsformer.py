"""Old location of :class:`densekit.backbones.drsformer.DRSformer`."""
from densekit.backbones.drsformer import DRSformer

__all__ = ['DRSformer']
