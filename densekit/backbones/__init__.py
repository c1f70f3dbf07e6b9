"""densekit backbones (registered under the densekit scope)."""
from densekit.backbones.base import PyramidBackbone  # noqa: F401
from densekit.backbones.carn import CARNBody  # noqa: F401
from densekit.backbones.catanet import CATANetBody  # noqa: F401
from densekit.backbones.convnext import ConvNeXt  # noqa: F401
from densekit.backbones.dformer import DFormerEncoder  # noqa: F401
from densekit.backbones.drln import DRLNBody  # noqa: F401
from densekit.backbones.drsformer import DRSformer  # noqa: F401
from densekit.backbones.edsr import EDSRBody  # noqa: F401
from densekit.backbones.fasternet import FasterNet  # noqa: F401
from densekit.backbones.fsrcnn import FSRCNNBody  # noqa: F401
from densekit.backbones.highres_skips import HighResSkips  # noqa: F401
from densekit.backbones.inceptionnext import InceptionNeXt  # noqa: F401
from densekit.backbones.meshnet import MeshNet  # noqa: F401
from densekit.backbones.piip import PIIP, PIIPSimplePyramid  # noqa: F401
from densekit.backbones.piip_interaction import PIIPInjector, PIIPInteraction  # noqa: F401
from densekit.backbones.rapidnet import RapidNet  # noqa: F401
from densekit.backbones.rclut import RCLUTBody  # noqa: F401
from densekit.backbones.resnet_hdc import ResNetHDC  # noqa: F401
from densekit.backbones.resunet import ResUNet  # noqa: F401
from densekit.backbones.revunet import RevUNetEncoder  # noqa: F401
from densekit.backbones.scnet import SCNetBody  # noqa: F401
from densekit.backbones.unet_encoder import ResUNetEncoder  # noqa: F401
from densekit.backbones.unireplknet import UniRepLKNet  # noqa: F401
