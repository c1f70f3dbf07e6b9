"""Old import path of the residual U-Net: the encoder is a backbone, the decoder a head."""
from densekit.backbones.unet_encoder import ARCH_SETTINGS, ResUNetEncoder
from densekit.heads.unet_head import UNetDecoderHead

__all__ = ['ARCH_SETTINGS', 'ResUNetEncoder', 'UNetDecoderHead']
