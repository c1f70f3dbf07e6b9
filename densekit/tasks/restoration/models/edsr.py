"""Old location of :class:`densekit.backbones.edsr.EDSRBody`."""
from densekit.backbones.edsr import EDSRBody

__all__ = ['EDSRBody']
