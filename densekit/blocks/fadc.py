"""Frequency-adaptive dilated convolution (FADC), 2D only (NCHW).

Three parts, each starting as an identity so an untrained :class:`FADConv` *is* a dilated conv
with dilation ``d`` (tested):

* **Per-pixel dilation (AdaDR).** A 3x3 conv with zero weight and bias predicts one scalar
  ``o`` per output pixel; the dilation there is ``D = d (1 + o)`` (``= d`` at init). The taps
  of a modulated deformable conv (mmcv, runs on CPU; op dilation 1) are moved by the offsets
  ``(D - 1) * (i, j)`` for tap ``(i, j)`` in ``{-1, 0, 1}^2`` (general ``k``: the tap's
  distance from the centre), so they sample at ``D (i, j)``. A second zero-initialised 3x3
  conv gives the modulation mask ``2 sigmoid(.)`` (``= 1`` at init).
* **AdaKern.** The kernel is split into its spatial mean (low frequency) and the rest (high
  frequency). Each part is reweighted per sample by an input-channel and an output-filter
  attention (global average pool, 1x1 conv, ReLU, zero-initialised 1x1 conv,
  ``2 sigmoid``; ``= 1`` at init). Because the attentions are per-channel scales, the
  per-sample conv is computed as ``f_low * conv(x * c_low, W_low) + f_high * conv(x * c_high,
  W_high)`` without building per-sample kernels.
* **FreqSelect.** The input is split in the FFT domain by nested centred low-pass boxes
  covering 1/2, 1/4 and 1/8 of each frequency axis into three high bands and the lowest band
  (:func:`frequency_bands`, which sum back to the input). Each high band is scaled by a
  per-pixel map ``2 sigmoid(conv3x3(x))`` from a zero-initialised conv (``= 1`` at init), and
  the lowest band is added back unchanged.

3D (``spatial_dims=3``) is not supported: mmcv's modulated deformable conv is 2D only.
"""
from __future__ import annotations

from typing import List, Sequence, Union

import torch
from mmcv.ops import modulated_deform_conv2d
from torch import Tensor, nn

from densekit.errors import positive_int
from densekit.registry import MODELS

__all__ = ['FADConv', 'FreqSelect', 'frequency_bands']


def frequency_bands(x: Tensor, ratios: Sequence[int] = (2, 4, 8)) -> List[Tensor]:
    """Split ``x`` ``(N, C, H, W)`` into ``len(ratios) + 1`` bands that sum to ``x``.

    Band 0 is ``x`` minus its low-pass to ``1/ratios[0]`` of the spectrum (the highest
    frequencies), band ``i`` the difference of the low-passes ``1/ratios[i-1]`` and
    ``1/ratios[i]``, and the last band the low-pass ``1/ratios[-1]``. A low-pass ``1/r`` keeps
    the frequencies with ``|f| < 0.5 / r`` on both axes (a centred box; symmetric, so every
    band is real).

    Example:
        >>> x = torch.rand(1, 2, 16, 12)
        >>> torch.allclose(sum(frequency_bands(x)), x, atol=1e-5)
        True
    """
    if not ratios or any(not isinstance(r, int) or r < 1 for r in ratios) or \
            list(ratios) != sorted(ratios):
        raise ValueError(f'ratios must be increasing positive ints, got {ratios!r}')
    h, w = x.shape[-2:]
    spec = torch.fft.fft2(x.float(), norm='ortho')
    fy = torch.fft.fftfreq(h, device=x.device).abs()[:, None]
    fx = torch.fft.fftfreq(w, device=x.device).abs()[None, :]
    bands, previous = [], x
    for r in ratios:
        mask = ((fy < 0.5 / r) & (fx < 0.5 / r)).to(spec.dtype)
        low = torch.fft.ifft2(spec * mask, norm='ortho').real.to(x.dtype)
        bands.append(previous - low)
        previous = low
    bands.append(previous)
    return bands


class FreqSelect(nn.Module):
    """Reweight the high-frequency bands of a feature map per pixel (identity at init).

    Args:
        channels: Input channels.
        ratios: Low-pass box ratios (see :func:`frequency_bands`).
        groups: Attention maps per band (each scales ``channels // groups`` channels).
    """

    def __init__(self, channels: int, ratios: Sequence[int] = (2, 4, 8), groups: int = 1) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f'groups={groups} must divide channels={channels}')
        self.ratios, self.groups = tuple(ratios), groups
        self.attention = nn.ModuleList(nn.Conv2d(channels, groups, 3, padding=1)
                                       for _ in self.ratios)
        for conv in self.attention:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` -> same shape."""
        bands = frequency_bands(x, self.ratios)
        n, c, h, w = x.shape
        out = bands[-1]
        for band, conv in zip(bands[:-1], self.attention):
            scale = 2 * torch.sigmoid(conv(x))  # (N, groups, H, W)
            out = out + (band.view(n, self.groups, c // self.groups, h, w)
                         * scale.unsqueeze(2)).view(n, c, h, w)
        return out


class _Attention(nn.Module):
    """GAP -> 1x1 -> ReLU -> zero-init 1x1 -> ``2 sigmoid``: per-sample scales (1 at init)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, out_channels, 1)
        nn.init.zeros_(self.expand.weight)
        nn.init.zeros_(self.expand.bias)

    def forward(self, pooled: Tensor) -> Tensor:
        return 2 * torch.sigmoid(self.expand(torch.relu(self.reduce(pooled))))


@MODELS.register_module()
class FADConv(nn.Module):
    """Frequency-adaptive dilated convolution (see the module docstring).

    Args:
        spatial_dims: Must be 2.
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Odd kernel size (3 in the paper).
        dilation: Base dilation ``d`` (the dilation at init).
        stride: Conv stride (the dilation / mask convs use it too).
        groups: Conv groups.
        bias: Conv bias.
        adakern: Use AdaKern.
        freq_select: Use FreqSelect on the input.
        freq_ratios: FreqSelect's low-pass ratios.
        attention_reduction: Hidden width divisor of AdaKern's attentions.

    Raises:
        ValueError: ``spatial_dims`` other than 2 (3D is not supported), bad channels /
            groups / kernel size / dilation.

    Example:
        >>> conv = FADConv(2, 8, 16, dilation=2)
        >>> conv(torch.rand(2, 8, 15, 11)).shape
        torch.Size([2, 16, 15, 11])
    """

    # densekit export refuses it: the deformable sampling is an mmcv compiled op
    export_refusal = 'modulated deformable convolution (mmcv.ops.modulated_deform_conv2d)'

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 kernel_size: int = 3, dilation: int = 1, stride: int = 1, groups: int = 1,
                 bias: bool = True, adakern: bool = True, freq_select: bool = True,
                 freq_ratios: Sequence[int] = (2, 4, 8), attention_reduction: int = 4) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(f'FADConv supports spatial_dims=2 only (mmcv\'s modulated '
                             f'deformable conv is 2D), got spatial_dims={spatial_dims!r}')
        for name, value in (('in_channels', in_channels), ('out_channels', out_channels),
                            ('groups', groups), ('dilation', dilation), ('stride', stride)):
            positive_int(value, name)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'groups={groups} must divide in_channels={in_channels} and '
                             f'out_channels={out_channels}')
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be a positive odd int, got {kernel_size!r}')
        self.spatial_dims = 2
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.dilation, self.stride, self.groups = \
            kernel_size, dilation, stride, groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups,
                                               kernel_size, kernel_size))
        nn.init.kaiming_normal_(self.weight, mode='fan_out', nonlinearity='relu')
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        pad = kernel_size // 2
        self.dilation_conv = nn.Conv2d(in_channels, 1, 3, stride=stride, padding=1)
        self.mask_conv = nn.Conv2d(in_channels, kernel_size * kernel_size, 3, stride=stride,
                                   padding=1)
        for conv in (self.dilation_conv, self.mask_conv):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        # tap (i, j) -> its offset from the kernel centre, in mmcv's (dy, dx) channel order
        taps = torch.arange(kernel_size, dtype=torch.float32) - pad
        ty, tx = torch.meshgrid(taps, taps, indexing='ij')
        self.register_buffer('tap_offsets', torch.stack([ty.reshape(-1), tx.reshape(-1)], 1)
                             .reshape(1, -1, 1, 1), persistent=False)
        hidden = max(in_channels // attention_reduction, 4)
        self.adakern = adakern
        if adakern:
            self.channel_attention = _Attention(in_channels, 2 * in_channels, hidden)
            self.filter_attention = _Attention(in_channels, 2 * out_channels, hidden)
        self.freq_select = FreqSelect(in_channels, freq_ratios) if freq_select else None

    def offsets(self, x: Tensor) -> Tensor:
        """mmcv offsets ``(N, 2 k^2, H', W')`` realising the per-pixel dilation of ``x``."""
        dil = self.dilation * (1 + self.dilation_conv(x))  # (N, 1, H', W')
        return (dil - 1) * self.tap_offsets.to(x.dtype)

    def mask(self, x: Tensor) -> Tensor:
        """Modulation mask ``(N, k^2, H', W')`` (``2 sigmoid``, 1 at init)."""
        return 2 * torch.sigmoid(self.mask_conv(x))

    def _deform(self, x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor,
                bias: Union[Tensor, None]) -> Tensor:
        return modulated_deform_conv2d(x, offset, mask, weight, bias, self.stride,
                                       self.kernel_size // 2, 1, self.groups, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C_in, H, W)`` -> ``(N, C_out, H', W')`` (``H' = H`` at stride 1)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'FADConv expects (N, {self.in_channels}, H, W), got '
                             f'{tuple(x.shape)}')
        if self.freq_select is not None:
            x = self.freq_select(x)
        offset, mask = self.offsets(x), self.mask(x)
        if not self.adakern:
            return self._deform(x, offset, mask, self.weight, self.bias)
        low = self.weight.mean(dim=(2, 3), keepdim=True).expand_as(self.weight)
        high = self.weight - low
        pooled = x.mean(dim=(2, 3), keepdim=True)
        c_low, c_high = self.channel_attention(pooled).chunk(2, dim=1)
        f_low, f_high = self.filter_attention(pooled).chunk(2, dim=1)
        out = f_low * self._deform(x * c_low, offset, mask, low.contiguous(), None)
        out = out + f_high * self._deform(x * c_high, offset, mask, high, None)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out

