"""densekit restoration task."""
