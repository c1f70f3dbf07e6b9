"""densekit medical3d task."""
