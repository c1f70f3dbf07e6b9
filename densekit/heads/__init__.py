"""densekit heads (registered under the densekit scope)."""
