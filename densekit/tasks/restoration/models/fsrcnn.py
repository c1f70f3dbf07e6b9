"""Old location of :class:`densekit.backbones.fsrcnn.FSRCNNBody`."""
from densekit.backbones.fsrcnn import FSRCNNBody

__all__ = ['FSRCNNBody']
