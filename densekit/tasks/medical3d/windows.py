"""Old import path of the window grid and importance maps (now :mod:`densekit.windowed.grid`)."""
from densekit.windowed.grid import (
    BLEND_MODES,
    fall_back_roi,
    importance_map,
    iter_windows,
    scan_intervals,
    window_starts,
)

__all__ = ['fall_back_roi', 'scan_intervals', 'window_starts', 'iter_windows', 'importance_map',
           'BLEND_MODES']
