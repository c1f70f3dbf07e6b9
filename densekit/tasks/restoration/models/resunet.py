"""Old location of :class:`densekit.backbones.resunet.ResUNet`."""
from densekit.backbones.resunet import ResUNet

__all__ = ['ResUNet']
