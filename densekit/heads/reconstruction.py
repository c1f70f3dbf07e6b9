"""Image reconstruction heads of the SR / restoration networks, and their scale helpers.

Every restoration network is a **body** (a registered backbone: input image -> features at the
input resolution) and a **head** (features and input image -> output image). Heads receive
the (normalised) input too, for global residuals. Modules needing the scale at run time (MDSR)
set ``multi_scale = True`` and take ``scale=`` in ``forward``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from densekit.errors import positive_int
from densekit.layers import LayerFactory
from densekit.registry import MODELS

__all__ = ['DIV2K_MEAN', 'SR_SCALES', 'check_scale', 'check_positive', 'PixelShuffleUpsampler',
           'PixelShuffleHead', 'DeconvHead', 'ReconstructionHead', 'upsample_image']

# RGB mean of DIV2K's training images in [0, 1]: EDSR/CARN subtract it from the input and add it
# back to the output ("mean shift"); densekit does this in the data preprocessor (``mean``).
DIV2K_MEAN = (0.4488, 0.4371, 0.4040)
SR_SCALES = (2, 3, 4)
_LAYERS = LayerFactory(2)


def check_positive(name: str, value: object) -> int:
    """:func:`densekit.errors.positive_int` with the arguments the other way round (kept for
    callers of the restoration models)."""
    return positive_int(value, name)


def check_scale(scale: object, allowed: Sequence[int] = SR_SCALES, name: str = 'scale') -> int:
    """Return ``scale`` if it is one of ``allowed``, else raise ``ValueError``."""
    if isinstance(scale, bool) or scale not in tuple(allowed):
        raise ValueError(f'{name} must be one of {tuple(allowed)}, got {scale!r}')
    return int(scale)  # type: ignore[arg-type]


def resolve_scale(requested: Optional[int], own: int, module: str) -> int:
    """The scale a single-scale module runs at; ``requested`` must be None or ``own``."""
    if requested is not None and requested != own:
        raise ValueError(f'{module} was built for scale {own}, got scale={requested!r}')
    return own


def upsample_image(x: Tensor, scale: int, mode: str) -> Tensor:
    """Upsample an image batch: ``'bicubic'`` (MATLAB ``imresize``) or ``'bilinear'``."""
    if mode == 'bicubic':
        # lazy: the MATLAB resize lives with the restoration task, which imports these heads
        from densekit.tasks.restoration.imresize import imresize_tensor

        return imresize_tensor(x, float(scale))
    return F.interpolate(x, scale_factor=scale, mode='bilinear', align_corners=False)


def _check_skip(input_skip: Optional[str]) -> None:
    if input_skip not in (None, 'bicubic', 'bilinear'):
        raise ValueError(f"input_skip must be None, 'bicubic' or 'bilinear', got {input_skip!r}")


class PixelShuffleUpsampler(nn.Sequential):
    """Sub-pixel upsampling: per x2 step a 3x3 conv to 4C and PixelShuffle(2); x3 uses 9C.

    Args:
        channels: Feature channels C (kept).
        scale: 2, 3 or 4 (4 = two x2 steps).
        act: Activation after each conv (CARN uses ReLU; EDSR none).
        groups: Conv groups (CARN-M).

    Example:
        >>> PixelShuffleUpsampler(8, 3)(torch.randn(1, 8, 5, 5)).shape
        torch.Size([1, 8, 15, 15])
    """

    def __init__(self, channels: int, scale: int, act: bool = False, groups: int = 1) -> None:
        positive_int(channels, 'channels')
        check_scale(scale)
        steps = [2, 2] if scale == 4 else [scale]
        layers: list = []
        for factor in steps:
            layers.append(_LAYERS.conv(channels, channels * factor * factor, 3, padding=1,
                                       groups=groups))
            if act:
                layers.append(nn.ReLU(inplace=True))
            layers.append(nn.PixelShuffle(factor))
        super().__init__(*layers)


@MODELS.register_module()
class PixelShuffleHead(nn.Module):
    """SR reconstruction: :class:`PixelShuffleUpsampler` then a 3x3 conv to the output channels.

    With ``scales`` (MDSR) there is one upsampler per scale and a shared output conv; the scale
    is chosen per forward call.

    Args:
        in_channels: Feature channels.
        scale: Upscaling factor (single-scale head).
        out_channels: Image channels.
        act: ReLU after the upsampling convs (CARN).
        groups: Upsampler conv groups (CARN-M).
        scales: Scales of a multi-scale (MDSR) head; overrides ``scale``.
        input_skip: ``'bicubic'`` or ``'bilinear'`` adds the upsampled input image to the
            output (global residual learning, as in VDSR/SCNet; the output conv then starts at
            zero so the untrained model equals that interpolation). ``None`` (EDSR) adds
            nothing.

    Shape:
        ``(N, C, H, W)`` features -> ``(N, out, s*H, s*W)``; e.g. (1, 64, 48, 48) -> (1, 3, 96, 96)
        at x2.
    """

    def __init__(self, in_channels: int, scale: int = 2, out_channels: int = 3,
                 act: bool = False, groups: int = 1,
                 scales: Optional[Sequence[int]] = None,
                 input_skip: Optional[str] = None) -> None:
        super().__init__()
        _check_skip(input_skip)
        positive_int(in_channels, 'in_channels')
        positive_int(out_channels, 'out_channels')
        self.multi_scale = scales is not None
        self.scales = tuple(check_scale(s, name='scales item') for s in scales) if scales \
            else (check_scale(scale),)
        if self.multi_scale and not self.scales:
            raise ValueError(f'scales must be a non-empty sequence of {SR_SCALES}, got {scales!r}')
        self.scale = self.scales[0]
        self.upsamplers = nn.ModuleDict({
            str(s): PixelShuffleUpsampler(in_channels, s, act=act, groups=groups)
            for s in self.scales})
        self.conv_out = _LAYERS.conv(in_channels, out_channels, 3, padding=1)
        self.input_skip = input_skip
        if input_skip:
            nn.init.zeros_(self.conv_out.weight)
            nn.init.zeros_(self.conv_out.bias)

    def forward(self, feats: Tensor, lq: Tensor, scale: Optional[int] = None) -> Tensor:  # noqa: D102
        if scale is None:
            scale = self.scale
        if scale not in self.scales:
            raise ValueError(f'this head upsamples by {self.scales}, got scale={scale!r}')
        out = self.conv_out(self.upsamplers[str(scale)](feats))
        if self.input_skip:
            out = out + upsample_image(lq, scale, self.input_skip)
        return out


@MODELS.register_module()
class DeconvHead(nn.Module):
    """FSRCNN reconstruction: one transposed conv (``kernel_size``, stride = scale).

    ``input_skip`` (``'bicubic'``/``'bilinear'``) adds the upsampled input, as in
    :class:`PixelShuffleHead`.

    Shape:
        ``(N, C, H, W)`` -> ``(N, out, s*H, s*W)``; e.g. (1, 56, 20, 20) -> (1, 1, 60, 60) at x3.
    """

    def __init__(self, in_channels: int, scale: int = 2, out_channels: int = 1,
                 kernel_size: int = 9, input_skip: Optional[str] = None) -> None:
        super().__init__()
        positive_int(in_channels, 'in_channels')
        positive_int(out_channels, 'out_channels')
        self.scale = check_scale(scale)
        if kernel_size % 2 == 0 or kernel_size < 1:
            raise ValueError(f'kernel_size must be a positive odd int, got {kernel_size!r}')
        _check_skip(input_skip)
        pad = kernel_size // 2
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=scale,
                                         padding=pad, output_padding=scale - 1)
        nn.init.normal_(self.deconv.weight, std=0.001)
        nn.init.zeros_(self.deconv.bias)
        self.input_skip = input_skip

    def forward(self, feats: Tensor, lq: Tensor) -> Tensor:  # noqa: D102
        out = self.deconv(feats)
        if self.input_skip:
            out = out + upsample_image(lq, self.scale, self.input_skip)
        return out


@MODELS.register_module()
class ReconstructionHead(nn.Module):
    """Same-size reconstruction: a conv to the image channels plus the input (global residual).

    Shape:
        ``(N, C, H, W)`` features and ``(N, out, H, W)`` input -> ``(N, out, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int = 3, kernel_size: int = 3,
                 residual: bool = True, bias: bool = False) -> None:
        super().__init__()
        positive_int(in_channels, 'in_channels')
        positive_int(out_channels, 'out_channels')
        self.conv = _LAYERS.conv(in_channels, out_channels, kernel_size,
                                 padding=kernel_size // 2, bias=bias)
        self.residual = residual

    def forward(self, feats: Tensor, lq: Tensor) -> Tensor:  # noqa: D102
        out = self.conv(feats)
        return out + lq if self.residual else out
