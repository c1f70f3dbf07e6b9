"""Old import path of the window-batch call planning (now :mod:`densekit.windowed.batching`)."""
from densekit.windowed.batching import (
    PER_SAMPLE_ATTR,
    UNUSED_CHILDREN_ATTR,
    CallPlanner,
    independent_samples,
)

__all__ = ['CallPlanner', 'independent_samples', 'PER_SAMPLE_ATTR', 'UNUSED_CHILDREN_ATTR']
