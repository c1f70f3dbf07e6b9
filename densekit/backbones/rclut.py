"""RC-LUT body (Liu et al., ICCV 2023): reconstructed convolutions that convert to look-up tables.

An n x n convolution over 8-bit pixels would need an n^2-dimensional table. A *reconstructed
convolution* (RC) module separates the two things a conv does: each of the n^2 window positions
``p`` has its own map ``f_p`` of one pixel (channel computation: a 1 -> ``rc_features`` ->
1 linear pair, as released; ``rc_act`` optionally puts an activation between), and the
positions are aggregated by their mean (spatial computation). ``tanh`` and an 8-bit
quantisation (x127, round with a straight-through gradient, +127) follow, so the RC output is
again an 8-bit code. Because ``f_p`` sees one 8-bit pixel, it is exactly a 1D table of 256
entries: the module converts into n^2 1D tables.

The RC codes of each pixel and its right, lower and lower-right neighbours feed a MuLUT-style
2x2 unit: 2x2 conv 1 -> F + ReLU, ``dense_layers`` densely connected 1x1 convs (+F each, ReLU),
a 1x1 conv to ``scale^2`` and ``tanh``; its output, quantised to int8 (x127, straight-through
rounding), is a 4D table over the four codes (see :mod:`densekit.tasks.restoration.lut`).

Rotation ensemble (as released): for r in 0..``rotations``-1 the image is rotated by r x 90
degrees, replicate-padded right and bottom by ``rc_size`` (n - 1 for the RC window, 1 for the
2x2 unit), run through RC and unit, pixel-shuffled, rotated back and summed; the body returns
``sum / (rotations * 127)`` pixel-unshuffled to ``(N, C * scale^2, H, W)``, i.e. a residual in
image units, which :class:`~densekit.heads.PixelShuffleSkipHead` shuffles and adds to the
upsampled input. The receptive field per rotation is (n + 1) x (n + 1) below-right of the
pixel, (2n + 1) x (2n + 1) over four rotations (11 x 11 for n = 5).

Channels are processed independently with shared weights (RC-LUT runs per channel); use it in
a ``Restorer(luma_only=True)`` for Y. Inputs are image values in [0, 1] and are quantised to
8-bit codes first (straight-through), because the tables are indexed by 8-bit pixels.

The convs run with ``fast_eval=False``: the codes are rounded, so a fast path that changes the
float result in the last bit could flip a code where the tables, built from the plain convs,
would not.
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densekit.backbones.contract import FullResolutionBody
from densekit.errors import ArgumentError, positive_int
from densekit.layers import ConvNormAct
from densekit.registry import MODELS

__all__ = ['RCLUTBody', 'RCModule', 'LUTUnit', 'round_ste', 'quantize_input']

ROTATIONS = (1, 2, 4)


def rotate90(x: Tensor, k: int) -> Tensor:
    """``torch.rot90(x, k, dims=(2, 3))`` written with flips and transposes, which ONNX has."""
    k %= 4
    if k == 1:
        return x.flip(3).transpose(2, 3)
    if k == 2:
        return x.flip(2).flip(3)
    if k == 3:
        return x.transpose(2, 3).flip(3)
    return x


def round_ste(x: Tensor) -> Tensor:
    """``round(x)`` forward, identity gradient (straight-through / BPDA)."""
    return x + (torch.round(x) - x).detach()


def quantize_input(x: Tensor) -> Tensor:
    """Image values in [0, 1] -> 8-bit codes 0..255 (as floats), straight-through gradient."""
    return round_ste((x * 255.0).clamp(0.0, 255.0))


class RCModule(nn.Module):
    """Reconstructed convolution over an ``size x size`` window of 8-bit codes (valid, no pad).

    ``position_maps(codes)`` gives every pixel's ``f_p(pixel)`` for all positions ``p``
    (``(N, size^2, H, W)``; channel ``p = dy * size + dx``), which is what the 1D tables store;
    ``forward`` aggregates them over the window (mean), applies tanh and quantises to codes.

    Shape:
        ``(N, 1, H, W)`` codes -> ``(N, 1, H - size + 1, W - size + 1)`` codes in 0..254.
    """

    def __init__(self, size: int = 5, features: int = 64,
                 act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.size = positive_int(size, 'rc_size')
        positive_int(features, 'rc_features')
        positions = size * size
        self.expand = ConvNormAct(2, 1, positions * features, 1, act_cfg=act_cfg,
                                  fast_eval=False)
        self.reduce = ConvNormAct(2, positions * features, positions, 1, groups=positions,
                                  act_cfg=None, fast_eval=False)
        select = torch.eye(positions).reshape(1, positions, size, size)
        self.register_buffer('mean_weight', select / positions, persistent=False)
        self._init_anchor(features)

    @torch.no_grad()
    def _init_anchor(self, features: int) -> None:
        # Start as the anchor pixel: f_0(x) ~ n^2 (2x - 1) (least squares over the 256 codes,
        # whatever rc_act is), every other map 0, so the RC codes start as
        # round(127 tanh(2x - 1)) + 127 of the pixel itself and the network as SR-LUT's 2x2
        # unit. A default init averages 25 random maps to nearly a constant code.
        self.reduce.conv.weight.zero_()
        self.reduce.conv.bias.zero_()
        x = torch.linspace(0, 1, 256)
        hidden = self.expand(x.view(1, 1, 1, 256))[0, :features, 0].T          # (256, F)
        design = torch.cat([hidden, torch.ones(256, 1)], 1).double()
        target = (self.size ** 2 * (2 * x - 1)).double()[:, None]
        solution = torch.linalg.lstsq(design, target).solution[:, 0].float()
        self.reduce.conv.weight[0, :, 0, 0] = solution[:-1]
        self.reduce.conv.bias[0] = solution[-1]

    def position_maps(self, codes: Tensor) -> Tensor:
        """``(N, 1, H, W)`` codes -> ``(N, size^2, H, W)``: ``f_p`` of every pixel."""
        return self.reduce(self.expand(codes / 255.0))

    def forward(self, codes: Tensor) -> Tensor:  # noqa: D102
        mean = F.conv2d(self.position_maps(codes), self.mean_weight.to(codes.dtype))
        return (round_ste(torch.tanh(mean) * 127.0) + 127.0).clamp(0.0, 255.0)


class LUTUnit(nn.Module):
    """MuLUT-style unit on the 2x2 neighbourhood of codes (becomes a 4D table).

    Shape:
        ``(N, 1, H + 1, W + 1)`` codes -> ``(N, out, H, W)`` in [-1, 1] (tanh, unquantised).
    """

    def __init__(self, out_channels: int, features: int = 64, dense_layers: int = 4) -> None:
        super().__init__()
        positive_int(features, 'unit_features')
        if not isinstance(dense_layers, int) or isinstance(dense_layers, bool) or dense_layers < 0:
            raise ArgumentError(f'dense_layers must be an int >= 0, got {dense_layers!r}')
        self.stem = ConvNormAct(2, 1, features, 2, fast_eval=False)
        self.dense = nn.ModuleList(
            ConvNormAct(2, features * (i + 1), features, 1, fast_eval=False)
            for i in range(dense_layers))
        self.out = ConvNormAct(2, features * (dense_layers + 1), out_channels, 1, act_cfg=None,
                               fast_eval=False)
        nn.init.zeros_(self.out.conv.weight)  # starts at a zero residual: the skip alone
        nn.init.zeros_(self.out.conv.bias)

    def forward(self, codes: Tensor) -> Tensor:  # noqa: D102
        x = self.stem(codes / 255.0)
        for layer in self.dense:
            x = torch.cat([x, layer(x)], dim=1)
        return torch.tanh(self.out(x))


@MODELS.register_module()
class RCLUTBody(FullResolutionBody, nn.Module):
    """RC module + 2x2 LUT unit with a rotation ensemble; converts to tables exactly.

    Args:
        scale: Upscaling factor (the unit predicts ``scale^2`` sub-pixels).
        in_channels: Image channels, each processed alone with the same weights (1 = luma).
        rc_size: RC window n (the release uses 5, 7 and 3 for its S, D and Y modes).
        rc_features: Hidden width of each position's map (64 as released).
        rc_act: Activation between the two linear maps of a position (None as released: each
            map is then affine in the pixel; any activation keeps it a 1D table).
        unit_features: Width F of the 2x2 unit (64 as in MuLUT).
        dense_layers: Densely connected 1x1 layers of the unit (4 as in MuLUT).
        rotations: 4 (the release's ensemble), 2 or 1.

    Shape:
        ``(N, C, H, W)`` in [0, 1] -> ``(N, C * scale^2, H, W)`` residual, e.g. x2:
        (1, 1, 32, 32) -> (1, 4, 32, 32); pixel-shuffle it with ``PixelShuffleSkipHead``.

    Example:
        >>> body = RCLUTBody(scale=2, rc_size=3, rc_features=4, unit_features=8)
        >>> body(torch.rand(1, 1, 8, 10)).shape
        torch.Size([1, 4, 8, 10])
    """

    def __init__(self, scale: int = 2, in_channels: int = 1, rc_size: int = 5,
                 rc_features: int = 64, rc_act: Optional[dict] = None,
                 unit_features: int = 64, dense_layers: int = 4, rotations: int = 4) -> None:
        super().__init__()
        self.scale = positive_int(scale, 'scale')
        self.in_channels = positive_int(in_channels, 'in_channels')
        if rotations not in ROTATIONS or isinstance(rotations, bool):
            raise ArgumentError(f'rotations must be one of {ROTATIONS}, got {rotations!r}')
        if rc_act is not None and not isinstance(rc_act, dict):
            raise ArgumentError(f'rc_act must be None or an activation config dict, got '
                                f'{rc_act!r}')
        self.rotations = rotations
        self.rc = RCModule(rc_size, rc_features, rc_act)
        self.unit = LUTUnit(scale * scale, unit_features, dense_layers)
        self.out_channels = (in_channels * scale * scale,)

    @property
    def rc_size(self) -> int:
        """The RC window n."""
        return self.rc.size

    def rotation_outputs(self, x: Tensor) -> List[Tensor]:
        """Per rotation, the int8-valued unit output ``round(127 tanh(.))`` at ``(N*C, 1, sH,
        sW)`` (pixel-shuffled, rotated back): what the tables reproduce."""
        n, c, h, w = x.shape
        codes = quantize_input(x.reshape(n * c, 1, h, w))
        pad = self.rc.size
        outs = []
        for r in range(self.rotations):
            k = r * (4 // self.rotations)
            rotated = rotate90(codes, k)
            padded = F.pad(rotated, (0, pad, 0, pad), mode='replicate')
            # (H + n, W + n) -> RC (valid n x n) -> (H + 1, W + 1) -> unit (valid 2x2) -> (H, W)
            q = round_ste(self.unit(self.rc(padded)) * 127.0)
            outs.append(rotate90(F.pixel_shuffle(q, self.scale), -k))
        return outs

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'RCLUTBody expects (N, {self.in_channels}, H, W) images, got shape '
                             f'{tuple(x.shape)}')
        n, c, h, w = x.shape
        total = torch.stack(self.rotation_outputs(x)).sum(0) / (self.rotations * 127.0)
        return F.pixel_unshuffle(total, self.scale).reshape(n, c * self.scale ** 2, h, w)
