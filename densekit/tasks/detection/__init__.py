"""densekit detection task."""
