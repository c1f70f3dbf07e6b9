"""densekit backbones (registered under the densekit scope)."""
