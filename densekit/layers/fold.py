"""Fold BatchNorm into the preceding convolution: the eval fast path shared by necks and backbones.

A BatchNorm that uses its running statistics is an affine map per output channel, so
``bn(conv(x, w, b)) == conv(x, w * s, (b - mean) * s + beta)`` with
``s = gamma / sqrt(running_var + eps)`` (the idea of "Efficient ConvBN Blocks",
arXiv:2305.11624). :class:`~densekit.layers.ConvNormAct` applies it automatically whenever its
BatchNorm is in eval mode: under ``torch.no_grad()`` / ``torch.inference_mode()`` the folded
weights are cached (and refreshed when any parameter or statistic changes in place); with
gradients enabled they are computed on the fly, so frozen-BN fine-tuning stays differentiable.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ['fold_conv_bn', 'fuse_conv_bn', 'can_fold', 'DerivedCache', 'FoldedParams',
           'set_fast_eval']


def can_fold(conv: nn.Module, norm: Optional[nn.Module]) -> bool:
    """Whether ``norm`` is a BatchNorm using running statistics right now, after a plain conv.

    Example:
        >>> can_fold(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3).eval())
        True
    """
    return (isinstance(conv, (nn.Conv2d, nn.Conv3d)) and isinstance(norm, _BatchNorm)
            and not norm.training and norm.running_mean is not None
            and norm.running_var is not None)


def fold_conv_bn(weight: Tensor, bias: Optional[Tensor], bn: _BatchNorm) -> Tuple[Tensor, Tensor]:
    """Weight and bias of the conv equivalent to ``conv(weight, bias)`` followed by ``bn`` (eval).

    Args:
        weight: Conv weight, ``(C_out, C_in / groups, *kernel)`` (2D or 3D kernel).
        bias: Conv bias ``(C_out,)`` or ``None``.
        bn: BatchNorm over the ``C_out`` channels, with running statistics.

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
    folded_weight = weight * scale.reshape((-1,) + (1,) * (weight.dim() - 1))
    return folded_weight, folded_bias


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


def _tensor_key(tensors: Sequence[Optional[Tensor]]) -> tuple:
    # inference tensors have no version counter; they cannot be updated in place outside
    # inference mode anyway
    return tuple(None if t is None else
                 (t.data_ptr(), -1 if t.is_inference() else t._version, t.dtype, t.device)
                 for t in tensors)


class DerivedCache:
    """Cache of tensors derived (without autograd) from source tensors.

    The key holds each source's storage pointer and version counter, so an in-place update
    (``load_state_dict``, an optimizer step) or a move (``.to(device)``) invalidates it.
    """

    def __init__(self) -> None:
        self._key: Optional[tuple] = None
        self._value: Any = None

    def get(self, sources: Sequence[Optional[Tensor]], fn: Callable[[], Any],
            extra: tuple = ()) -> Any:
        """``fn()`` computed under ``no_grad``, or the cached result for the same sources."""
        key = _tensor_key(sources) + tuple(extra)
        if key != self._key:
            # normal (not inference) tensors, so the cache also serves no_grad callers
            with torch.inference_mode(False), torch.no_grad():
                self._value = fn()
            self._key = key
        return self._value

    def clear(self) -> None:
        """Drop the cached value."""
        self._key = self._value = None


class FoldedParams(DerivedCache):
    """:class:`DerivedCache` of the folded ``(weight, bias)`` of a conv + BatchNorm pair."""

    def get(self, conv: nn.Module, bn: _BatchNorm) -> Tuple[Tensor, Tensor]:  # type: ignore
        """Folded ``(weight, bias)`` of ``conv`` + ``bn`` without autograd history."""
        def fold() -> Tuple[Tensor, Tensor]:
            weight, bias = fold_conv_bn(conv.weight, conv.bias, bn)
            return weight.contiguous(), bias.contiguous()

        sources = (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var)
        return super().get(sources, fold, extra=(bn.eps,))


def set_fast_eval(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch the eval fast path (BN folding, fused activations) of every block in ``model``.

    Returns:
        ``model``, for chaining.
    """
    for module in model.modules():
        if hasattr(module, 'fast_eval'):
            module.fast_eval = bool(enabled)
    return model
