"""FSRCNN body (Dong et al., 2016) on the luma channel of the low-resolution image.

conv5 1->d + PReLU (feature extraction), 1x1 d->s + PReLU (shrinking), m x (3x3 s->s + PReLU)
(mapping), 1x1 s->d + PReLU (expanding); the head is a 9x9 transposed conv with stride = scale
(:class:`~densekit.heads.reconstruction.DeconvHead`). The paper's setting is d=56, s=12, m=4.
Use it in a ``Restorer(luma_only=True)``: the network sees Y and chroma is upscaled bicubically.
"""
from __future__ import annotations

from torch import Tensor, nn

from densekit.backbones.contract import FullResolutionBody
from densekit.errors import positive_int
from densekit.layers import ConvNormAct
from densekit.registry import MODELS

__all__ = ['FSRCNNBody']


def _conv_prelu(cin: int, cout: int, k: int) -> ConvNormAct:
    unit = ConvNormAct(2, cin, cout, k, padding=k // 2, act_cfg=dict(type='PReLU'))
    nn.init.kaiming_normal_(unit.conv.weight, a=0.25, nonlinearity='leaky_relu')
    nn.init.zeros_(unit.conv.bias)
    return unit


@MODELS.register_module()
class FSRCNNBody(FullResolutionBody, nn.Module):
    """FSRCNN feature extraction, shrinking, mapping and expanding.

    Args:
        in_channels: 1 for luma (the paper), 3 for RGB.
        d: Feature channels (56).
        s: Shrunk channels (12).
        m: Mapping layers (4).

    Shape:
        ``(N, in, H, W)`` -> ``(N, d, H, W)``; e.g. (1, 1, 32, 32) -> (1, 56, 32, 32).
    """

    def __init__(self, in_channels: int = 1, d: int = 56, s: int = 12, m: int = 4) -> None:
        super().__init__()
        for name, value in (('in_channels', in_channels), ('d', d), ('s', s), ('m', m)):
            positive_int(value, name)
        self.extract = _conv_prelu(in_channels, d, 5)
        self.shrink = _conv_prelu(d, s, 1)
        self.mapping = nn.Sequential(*[_conv_prelu(s, s, 3) for _ in range(m)])
        self.expand = _conv_prelu(s, d, 1)
        self.out_channels = (d,)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.expand(self.mapping(self.shrink(self.extract(x))))
