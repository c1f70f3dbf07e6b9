"""densekit necks (registered under the densekit scope)."""
