"""Old location of :mod:`densekit.blocks.mefc`."""
from densekit.blocks.mefc import EXPERTS, MEFC, build_expert

__all__ = ['EXPERTS', 'MEFC', 'build_expert']
