"""Fold BatchNorm into the preceding convolution: the eval fast path shared by necks and backbones.

A BatchNorm that uses its running statistics is an affine map per output channel, so
``bn(conv(x, w, b)) == conv(x, w * s, (b - mean) * s + beta)`` with
``s = gamma / sqrt(running_var + eps)`` (the idea of "Efficient ConvBN Blocks",
arXiv:2305.11624). :class:`~densekit.layers.ConvNormAct` applies it automatically whenever its
BatchNorm is in eval mode (on CPU float32, see :mod:`densekit.accel`) and the weight is
smaller than the conv output (:func:`fold_pays`: the fold is one pass over the weight, the
BatchNorm it replaces one pass over the output). The folded weights are computed from the
current parameters on every call, so there is no cache that an edit could leave stale
(``.data`` edits and mmengine's EMA swaps do not bump tensor versions); with gradients enabled
the fold is differentiable, so frozen-BN fine-tuning works through it.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ['fold_conv_bn', 'fuse_conv_bn', 'can_fold', 'fold_pays', 'set_fast_eval']


def can_fold(conv: nn.Module, norm: Optional[nn.Module]) -> bool:
    """Whether ``norm`` is a BatchNorm using running statistics right now, after a plain conv.

    Example:
        >>> can_fold(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3).eval())
        True
    """
    return (isinstance(conv, (nn.Conv2d, nn.Conv3d)) and isinstance(norm, _BatchNorm)
            and not norm.training and norm.running_mean is not None
            and norm.running_var is not None)


def fold_pays(conv: nn.Module, like: Tensor) -> bool:
    """Whether folding a BatchNorm into ``conv`` for input ``like`` costs less than applying it.

    A per-call fold reads and writes the whole weight; an eval BatchNorm reads and writes the
    conv output once. So fold only when the weight has at most as many elements as the output
    (``torch.profiler`` of ``tools/benchmark.py necks --only "ASPPHead 64x64 (mmseg) inference"``,
    batch 2: 17 ms per fold of a 512x2048x3x3 weight, 4 ms per BatchNorm on its 2x512x64x64
    output), or when the input is channels-last and the weight is not: the conv then rewrites
    the whole weight in channels-last order on every call anyway (15 ms per weight there), and
    the fold is written straight in that order at no extra cost.

    Example:
        >>> fold_pays(nn.Conv2d(8, 8, 3), torch.zeros(1, 8, 32, 32))
        True
        >>> fold_pays(nn.Conv2d(2048, 512, 3, padding=1), torch.zeros(1, 2048, 8, 8))
        False
    """
    weight = conv.weight
    if like.dim() in (4, 5) and weight.dim() == like.dim() and weight.shape[1] > 1:
        fmt = torch.channels_last if like.dim() == 4 else torch.channels_last_3d
        if like.is_contiguous(memory_format=fmt) and not like.is_contiguous() \
                and not weight.is_contiguous(memory_format=fmt):
            return True  # the conv copies the weight to channels-last anyway; the fold rides along
    stride = math.prod(getattr(conv, 'stride', (1,)))
    out_numel = like.shape[0] * weight.shape[0] * math.prod(like.shape[2:]) // max(stride, 1)
    return weight.numel() <= out_numel


def fold_conv_bn(weight: Tensor, bias: Optional[Tensor], bn: _BatchNorm,
                 memory_format: torch.memory_format = torch.contiguous_format
                 ) -> Tuple[Tensor, Tensor]:
    """Weight and bias of the conv equivalent to ``conv(weight, bias)`` followed by ``bn`` (eval).

    Args:
        weight: Conv weight, ``(C_out, C_in / groups, *kernel)`` (2D or 3D kernel).
        bias: Conv bias ``(C_out,)`` or ``None``.
        bn: BatchNorm over the ``C_out`` channels, with running statistics.
        memory_format: Memory format of the folded weight (written directly in it without
            autograd).

    Returns:
        ``(folded_weight, folded_bias)``, differentiable w.r.t. every input.

    Example:
        >>> w, b = fold_conv_bn(torch.ones(4, 2, 3, 3), None, nn.BatchNorm2d(4).eval())
        >>> w.shape, b.shape
        (torch.Size([4, 2, 3, 3]), torch.Size([4]))
    """
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean if bias is None else bias - bn.running_mean
    folded_bias = shift * scale
    if bn.bias is not None:
        folded_bias = folded_bias + bn.bias
    scale = scale.reshape((-1,) + (1,) * (weight.dim() - 1))
    if torch.is_grad_enabled():
        return (weight * scale).contiguous(memory_format=memory_format), folded_bias
    folded_weight = torch.empty_like(weight, memory_format=memory_format)
    return torch.mul(weight, scale, out=folded_weight), folded_bias


@torch.no_grad()
def fuse_conv_bn(conv: nn.Module, bn: _BatchNorm) -> nn.Module:
    """A new conv (with bias) computing ``bn(conv(x))`` for a BatchNorm in eval mode (deploy).

    Example:
        >>> conv = fuse_conv_bn(nn.Conv3d(2, 4, 3, bias=False), nn.BatchNorm3d(4).eval())
        >>> conv.bias is not None
        True
    """
    if not isinstance(conv, (nn.Conv2d, nn.Conv3d)):
        raise TypeError(f'conv must be nn.Conv2d or nn.Conv3d, got {type(conv).__name__}')
    if not isinstance(bn, _BatchNorm) or bn.running_mean is None:
        raise TypeError(f'bn must be a BatchNorm with running statistics, got {bn!r}')
    weight, bias = fold_conv_bn(conv.weight, conv.bias, bn)
    fused = type(conv)(conv.in_channels, conv.out_channels, conv.kernel_size,
                       stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                       groups=conv.groups, bias=True, padding_mode=conv.padding_mode,
                       device=weight.device, dtype=weight.dtype)
    fused.weight.copy_(weight)
    fused.bias.copy_(bias)
    return fused


def set_fast_eval(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Allow (True) or forbid (False) every fast path of :mod:`densekit.accel` in ``model``'s
    modules: BN folding, in-place activations, tap skipping, polyphase convs, channels-last
    ASPP / JPU, the FPN add, the medical blocks' fused instance norm. With False the model runs
    the plain PyTorch ops; :func:`densekit.accel.set_fast_paths` is the process-wide switch.

    Returns:
        ``model``, for chaining.
    """
    for module in model.modules():
        if hasattr(module, 'fast_eval'):
            module.fast_eval = bool(enabled)
    return model
