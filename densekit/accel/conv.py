"""Convolution dispatch: the plain ``F.conv2d`` / ``F.conv3d``, or an exact CPU fast path.

:func:`conv_forward` is what :class:`~densekit.layers.ConvNormAct` (and every neck that runs a
conv with replaced weights) calls. It picks, per call and through :func:`~densekit.accel.use`:

* ``polyphase``: dilated, same-padded depthwise convs on channels-last inputs run on polyphase
  components (:mod:`~densekit.accel.polyphase`);
* ``tap_skip``: NCHW zero-padded convs whose taps mostly fall in the padding run on a
  channels-last copy of the input, where oneDNN's kernels skip those taps in the forward and
  the backward, and return NCHW (:func:`~densekit.accel.taps.sparse_tap_plan`; measured there);
* otherwise (and on CUDA, under autocast, tracing, export, compile or with the switch off)
  the plain op.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densekit.accel.policy import use
from densekit.accel.polyphase import (
    CL_DEPTHWISE_MAX_DILATION,
    conv_polyphase,
    is_channels_last,
    is_same_padded,
)
from densekit.accel.taps import sparse_tap_plan

__all__ = ['conv_forward', 'conv_channels_last', 'is_plain_conv', 'polyphase_factors']

_CONV_FNS = {2: F.conv2d, 3: F.conv3d}


def is_plain_conv(conv: nn.Module) -> bool:
    """Whether ``conv`` is a stock ``nn.Conv2d`` / ``nn.Conv3d`` with numeric zero padding (the
    only convs the fast paths replace)."""
    return type(conv) in (nn.Conv2d, nn.Conv3d) and conv.padding_mode == 'zeros' \
        and not isinstance(conv.padding, str)


def _needs_grad(x: Tensor, weight: Tensor) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)


def polyphase_factors(conv: nn.Module, x: Tensor, weight: Optional[Tensor] = None,
                      fast: bool = True) -> Optional[Tuple[int, ...]]:
    """The dilation if ``conv`` (a dilated, same-padded depthwise conv on a channels-last ``x``)
    should run on polyphase components now, else None.

    oneDNN's channels-last depthwise kernels run dilations up to
    :data:`~densekit.accel.polyphase.CL_DEPTHWISE_MAX_DILATION` at full speed in the forward,
    but only dilation 1 in the backward, hence the dependence on grad mode.
    """
    weight = conv.weight if weight is None else weight
    if not (fast and is_plain_conv(conv) and use('polyphase', x, weight)):
        return None
    dilation = tuple(conv.dilation)
    if (is_channels_last(x) and conv.groups == x.shape[1] > 1 and max(dilation) > 1
            and is_same_padded(weight.shape[2:], conv.stride, conv.padding, dilation)
            and (_needs_grad(x, weight) or max(dilation) > CL_DEPTHWISE_MAX_DILATION)):
        return dilation
    return None


def conv_forward(conv: nn.Module, x: Tensor, weight: Optional[Tensor] = None,
                 bias: Optional[Tensor] = None, out: Optional[Tensor] = None,
                 fast: bool = True) -> Tensor:
    """Run ``conv`` on ``x``, optionally with replacement (e.g. BN-folded) weight and bias.

    Args:
        conv: The convolution module.
        x: ``(N, C_in, *spatial)`` input (NCHW or NCDHW).
        weight: Weight to use instead of ``conv.weight``.
        bias: Bias to use instead of ``conv.bias`` (only read when ``weight`` is given).
        out: Optional tensor to write the result into (no autograd).
        fast: False forces the plain op (a module's own ``fast_eval=False``).

    Returns:
        ``(N, C_out, *out_spatial)``, e.g. ``(2, 8, 64, 64)`` for a 3x3 same conv of
        ``(2, 4, 64, 64)``.
    """
    if weight is None:
        weight, bias = getattr(conv, 'weight', None), getattr(conv, 'bias', None)
    if is_plain_conv(conv):
        y = _plain_conv(x, weight, bias, conv, out, fast)
        if y is out:
            return out
    elif weight is not getattr(conv, 'weight', None) and hasattr(conv, '_conv_forward'):
        y = conv._conv_forward(x, weight, bias)
    else:
        y = conv(x)
    if out is not None:
        out.copy_(y)
        return out
    return y


def _plain_conv(x: Tensor, weight: Tensor, bias: Optional[Tensor], conv: nn.Module,
                out: Optional[Tensor], fast: bool) -> Tensor:
    """The fastest exact algorithm the dispatcher allows for a zero-padded torch conv."""
    dilation, groups = conv.dilation, conv.groups
    if fast:
        factors = polyphase_factors(conv, x, weight)
        if factors is not None:
            return conv_polyphase(x, weight, bias, factors, groups)
        if use('tap_skip', x, weight, bias) and not is_channels_last(x) \
                and sparse_tap_plan(x, weight, conv.stride, conv.padding, dilation, groups):
            return conv_channels_last(x, weight, bias, conv.stride, conv.padding, dilation,
                                      groups)
    return _CONV_FNS[x.dim() - 2](x, weight, bias, conv.stride, conv.padding, dilation, groups)


def conv_channels_last(x: Tensor, weight: Tensor, bias: Optional[Tensor], stride: Any,
                       padding: Any, dilation: Any, groups: int) -> Tensor:
    """``F.conv2d`` / ``F.conv3d`` computed on a channels-last copy of ``x``, returned in
    ``x``'s contiguous (NCHW / NCDHW) layout; autograd flows through both copies."""
    fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
    y = _CONV_FNS[x.dim() - 2](x.contiguous(memory_format=fmt), weight, bias, stride, padding,
                               dilation, groups)
    return y.contiguous()
