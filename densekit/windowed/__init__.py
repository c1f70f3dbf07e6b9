"""One windowed-inference engine for inputs of any size, in 2D and 3D.

Every task that runs a network window by window goes through it: medical volumes
(:func:`sliding_window_inference`, MONAI's signature; :func:`sliding_window_labels`), 2D
segmentation of large images (``densekit.tasks.segmentation.segment_windows``) and tiled
super-resolution and deraining (``densekit.tasks.restoration.tiled_restore``, through
:func:`stream_windows`). Windows come from MONAI's grid or from a caller's
:class:`WindowLayout` (the cross-faded tiles of :func:`crossfade_layout`); outputs may be at
an integer multiple of the window size per axis; blended slabs are finalised as soon as no
later window reaches them, and kept whole (:class:`FullSink`), reduced to labels
(:class:`LabelSink`) or streamed out (:class:`StreamSink`).
"""
from densekit.windowed.batching import CallPlanner, independent_samples
from densekit.windowed.blend import Blender, FullSink, LabelSink, StreamSink
from densekit.windowed.engine import (
    sliding_window_inference,
    sliding_window_labels,
    stream_windows,
)
from densekit.windowed.grid import (
    BLEND_MODES,
    WindowLayout,
    check_tiling,
    crossfade_layout,
    crossfade_weights,
    importance_map,
    iter_windows,
    tile_spans,
)

__all__ = ['sliding_window_inference', 'sliding_window_labels', 'stream_windows',
           'WindowLayout', 'crossfade_layout', 'crossfade_weights', 'tile_spans',
           'check_tiling', 'importance_map', 'iter_windows', 'BLEND_MODES', 'Blender',
           'FullSink', 'LabelSink', 'StreamSink', 'CallPlanner', 'independent_samples']
