"""densekit backbones (registered under the densekit scope)."""
from densekit.backbones.piip import PIIP, PIIPSimplePyramid  # noqa: F401
