"""CATANet reconstruction head (Liu et al., CVPR 2025): sub-pixel upsampling with LeakyReLU,
a 3x3 conv to the image, plus the upsampled input image as the base.

Differs from :class:`~densekit.tasks.restoration.models.common.PixelShuffleHead` in the
activation (LeakyReLU 0.1 after each PixelShuffle instead of ReLU) and in keeping the output
conv's default init (the base is always added).
"""
from __future__ import annotations

from typing import List

from torch import Tensor, nn

from densekit.errors import ArgumentError, positive_int
from densekit.heads.reconstruction import check_scale, upsample_image
from densekit.layers import LayerFactory
from densekit.registry import MODELS

_LAYERS = LayerFactory(2)

__all__ = ['CATANetHead']


@MODELS.register_module()
class CATANetHead(nn.Module):
    """Per x2 step (x4 = two) or once for x3: 3x3 conv ``C -> C * f^2``, PixelShuffle(f),
    LeakyReLU; then a 3x3 conv ``C -> out`` and ``+ upsample(lq)``.

    Args:
        in_channels: Feature channels C.
        scale: 2, 3 or 4.
        out_channels: Image channels.
        negative_slope: LeakyReLU slope (0.1).
        input_skip: Interpolation of the base image: ``'bilinear'`` (paper) or ``'bicubic'``
            (MATLAB imresize).

    Shape:
        ``(N, C, H, W)`` features and ``(N, out, H, W)`` input -> ``(N, out, s*H, s*W)``; e.g.
        (1, 40, 13, 11) -> (1, 3, 26, 22) at x2.
    """

    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, in_channels: int = 40, scale: int = 2, out_channels: int = 3,
                 negative_slope: float = 0.1, input_skip: str = 'bilinear') -> None:
        super().__init__()
        for name, value in (('in_channels', in_channels), ('out_channels', out_channels)):
            positive_int(value, name)
        self.scale = check_scale(scale)
        if input_skip not in ('bilinear', 'bicubic'):
            raise ArgumentError(f"input_skip must be 'bilinear' or 'bicubic', got {input_skip!r}")
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)) \
                or negative_slope < 0:
            raise ArgumentError(f'negative_slope must be a float >= 0, got {negative_slope!r}')
        factors: List[int] = [2, 2] if scale == 4 else [scale]
        layers: List[nn.Module] = []
        for factor in factors:
            layers += [_LAYERS.conv(in_channels, in_channels * factor ** 2, 3, padding=1),
                       nn.PixelShuffle(factor), nn.LeakyReLU(negative_slope, inplace=True)]
        self.upsampler = nn.Sequential(*layers)
        self.conv_out = _LAYERS.conv(in_channels, out_channels, 3, padding=1)
        self.input_skip = input_skip

    def forward(self, feats: Tensor, lq: Tensor) -> Tensor:  # noqa: D102
        return self.conv_out(self.upsampler(feats)) + upsample_image(lq, self.scale,
                                                                     self.input_skip)
