"""Old location of SCNet: the body is :mod:`densekit.backbones.scnet`, the head
:mod:`densekit.heads.shift_head`, :class:`Shift8` :mod:`densekit.blocks.shift`."""
from densekit.backbones.scnet import SCNetBody
from densekit.blocks.shift import Shift8
from densekit.heads.shift_head import ShiftUpsampleHead

__all__ = ['Shift8', 'SCNetBody', 'ShiftUpsampleHead']
