"""Old import path of the sliding-window functions (now :mod:`densekit.windowed.engine`)."""
from densekit.windowed.engine import sliding_window_inference, sliding_window_labels

__all__ = ['sliding_window_inference', 'sliding_window_labels']
