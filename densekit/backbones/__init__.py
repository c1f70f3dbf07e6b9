"""densekit backbones (registered under the densekit scope)."""
from densekit.backbones.base import PyramidBackbone  # noqa: F401
from densekit.backbones.piip import PIIP, PIIPSimplePyramid  # noqa: F401
from densekit.backbones.rapidnet import RapidNet  # noqa: F401
from densekit.backbones.resnet_hdc import ResNetHDC  # noqa: F401
from densekit.backbones.unireplknet import UniRepLKNet  # noqa: F401
