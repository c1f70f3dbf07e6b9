"""Old import path of the slab-by-slab blending (now :mod:`densekit.windowed.blend`)."""
from densekit.windowed.blend import Blender, FullSink, LabelSink, RowBuffer

__all__ = ['RowBuffer', 'Blender', 'FullSink', 'LabelSink']
