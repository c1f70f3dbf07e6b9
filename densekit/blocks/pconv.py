"""Partial convolution (PConv) of FasterNet (Chen et al., "Run, Don't Walk: Chasing Higher
FLOPS for Faster Neural Networks"), for NCHW and NCDHW tensors.

A regular k x k conv is applied to the first ``C / n_div`` channels only; the remaining
channels pass through unchanged. With ``n_div = 4`` the conv costs 1/16 of a full conv's FLOPs
and reads 1/4 of the memory, while the pointwise layers that follow mix every channel.

Two ways to run it:

* :meth:`PConv.forward` returns a new tensor (split, conv, concatenate); it is the
  autograd-safe path and never touches its input.
* :meth:`PConv.mix_` / :meth:`PConv.restore_` (inference, no autograd) overwrite the first
  channels of the input in place and give back their old values, so a residual block can run
  its MLP on the mixed tensor and then restore its input, copying ``C / n_div`` channels
  instead of all ``C`` (see ``densekit.backbones.fasternet.FasterNetBlock``).
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor, nn

from densekit.errors import positive_int
from densekit.layers import LayerFactory, as_tuple
from densekit.registry import MODELS

__all__ = ['PConv']


@MODELS.register_module()
class PConv(nn.Module):
    """Partial convolution: conv on the first ``channels // n_div`` channels, identity on the
    rest.

    Args:
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        channels: Input = output channels C.
        n_div: The conv sees ``C // n_div`` channels (4 in FasterNet).
        kernel_size: Odd kernel size (int or per-axis), 3 in FasterNet.
        bias: Conv bias (FasterNet has none).

    Raises:
        ValueError: ``channels // n_div`` is zero, or a bad kernel size / spatial_dims.

    Example:
        >>> pconv = PConv(2, 16)
        >>> pconv.conv_channels, pconv(torch.randn(1, 16, 9, 11)).shape
        (4, torch.Size([1, 16, 9, 11]))
    """

    def __init__(self, spatial_dims: int, channels: int, *, n_div: int = 4,
                 kernel_size: Union[int, Sequence[int]] = 3, bias: bool = False) -> None:
        super().__init__()
        factory = LayerFactory(spatial_dims)
        for name, value in (('channels', channels), ('n_div', n_div)):
            positive_int(value, name)
        if channels // n_div < 1:
            raise ValueError(f'n_div={n_div} leaves no channel to convolve out of '
                             f'channels={channels}; expected n_div <= channels')
        kernel = as_tuple(kernel_size, factory.spatial_dims, 'kernel_size', minimum=1)
        if any(k % 2 == 0 for k in kernel):
            raise ValueError(f'kernel_size={kernel_size!r} must be odd on every axis')
        self.spatial_dims = factory.spatial_dims
        self.channels, self.n_div = channels, n_div
        self.conv_channels = channels // n_div
        self.conv = factory.conv(self.conv_channels, self.conv_channels, kernel,
                                 padding=tuple(k // 2 for k in kernel), bias=bias)

    def _check(self, x: Tensor) -> None:
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.channels:
            raise ValueError(f'PConv(spatial_dims={self.spatial_dims}, channels={self.channels})'
                             f' got an input of shape {tuple(x.shape)}')

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> new tensor of the same shape (input untouched)."""
        self._check(x)
        head, tail = torch.split(x, [self.conv_channels, self.channels - self.conv_channels],
                                 dim=1)
        return torch.cat((self.conv(head), tail), dim=1)

    def mix_(self, x: Tensor) -> Tensor:
        """Inference only: overwrite ``x[:, :C // n_div]`` with the conv result, in place.

        Returns:
            The overwritten channels' previous values (a contiguous copy), for
            :meth:`restore_`.

        Raises:
            RuntimeError: called with autograd enabled on a tensor or conv that needs gradients.
        """
        self._check(x)
        if torch.is_grad_enabled() and (x.requires_grad or self.conv.weight.requires_grad):
            raise RuntimeError('PConv.mix_ overwrites its input and is for inference only; use '
                               'forward() when gradients are needed')
        head = x[:, :self.conv_channels].clone(memory_format=torch.contiguous_format)
        x[:, :self.conv_channels] = self.conv(head)
        return head

    def restore_(self, x: Tensor, head: Tensor) -> Tensor:
        """Undo :meth:`mix_`: put ``head`` back into the first channels of ``x``."""
        x[:, :self.conv_channels] = head
        return x
