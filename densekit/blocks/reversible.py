"""Reversible residual blocks that train without storing activations (Pendse et al.,
"Memory Efficient 3D U-Net with Reversible Mobile Inverted
Bottlenecks").

* :class:`InvertedBottleneck` - the MobileNetV2 body: 1x1 expansion, depthwise kxk conv, linear
  1x1 projection, each followed by a norm (activations after the first two);
* :class:`ReversibleCoupling` - a RevNet coupling of two bottlenecks on the two channel halves:
  ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``, inverted exactly by ``x2 = y2 - G(y1)``,
  ``x1 = y1 - F(x2)``;
* :class:`ReversibleSequence` - couplings run by one autograd function that keeps only the
  sequence's output: the forward runs without autograd (every intermediate is freed as soon as
  the next block has read it), and the backward walks the blocks in reverse, rebuilding each
  block's input from its output while recomputing F and G under autograd, one half at a time.
  Peak activation memory is therefore one bottleneck's, whatever the depth;
* the U-Net encoder built from them is :class:`~densekit.backbones.revunet.RevUNetEncoder`.

F and G must be deterministic functions of their input (no dropout); norms with running
statistics are handled (their buffers are restored after the recomputation). The rebuilt inputs
carry the rounding of ``y - F(x)``: in float32 they differ from the true inputs by ~1e-6 per
block, which is harmless for gradients; use float64 to check them exactly.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

from densekit.blocks.residual import DEFAULT_ACT, DEFAULT_NORM
from densekit.layers import ConvNormAct, check_spatial_dims

__all__ = ['InvertedBottleneck', 'ReversibleCoupling', 'ReversibleSequence', 'check_int']


def check_int(value: Any, argname: str, minimum: int) -> int:
    """``value`` if it is an int (not a bool) of at least ``minimum``, else a ValueError."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f'{argname} must be an int >= {minimum}, got {value!r}')
    return value


class InvertedBottleneck(nn.Module):
    """Mobile inverted bottleneck without its residual (the coupling adds it).

    Args:
        spatial_dims: 3 (NCDHW) or 2 (NCHW).
        channels: Input and output channels.
        expand_ratio: Hidden width = ``expand_ratio * channels`` (1: no expansion conv).
        kernel_size: Kernel of the depthwise conv (odd).
        norm_cfg: Norm spec (default instance norm with affine).
        act_cfg: Activation spec (default LeakyReLU 0.01); the projection is linear.

    Example:
        >>> InvertedBottleneck(3, 4, expand_ratio=4)(torch.rand(1, 4, 6, 6, 6)).shape
        torch.Size([1, 4, 6, 6, 6])
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, spatial_dims: int, channels: int, expand_ratio: int = 4,
                 kernel_size: int = 3, norm_cfg: Any = DEFAULT_NORM,
                 act_cfg: Any = DEFAULT_ACT) -> None:
        super().__init__()
        spatial_dims = check_spatial_dims(spatial_dims)
        check_int(channels, 'channels', 1)
        check_int(expand_ratio, 'expand_ratio', 1)
        if check_int(kernel_size, 'kernel_size', 1) % 2 == 0:
            raise ValueError(f'kernel_size must be odd (same padding), got {kernel_size}')
        hidden = channels * expand_ratio
        self.expand: Optional[ConvNormAct] = None
        if expand_ratio > 1:
            self.expand = ConvNormAct(spatial_dims, channels, hidden, 1, norm_cfg=norm_cfg,
                                      act_cfg=act_cfg)
        self.depthwise = ConvNormAct(spatial_dims, hidden, hidden, kernel_size,
                                     padding=kernel_size // 2, groups=hidden, norm_cfg=norm_cfg,
                                     act_cfg=act_cfg)
        self.project = ConvNormAct(spatial_dims, hidden, channels, 1, norm_cfg=norm_cfg,
                                   act_cfg=None)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> ``(N, C, *spatial)``."""
        if self.expand is not None:
            x = self.expand(x)
        return self.project(self.depthwise(x))


class ReversibleCoupling(nn.Module):
    """RevNet coupling ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)`` of two inverted bottlenecks.

    ``x1`` / ``x2`` are the first and second channel halves. :meth:`forward` is the ordinary
    autograd computation; :class:`ReversibleSequence` runs the memory-free one.

    Args:
        spatial_dims: 3 or 2.
        channels: Input/output channels (even).
        expand_ratio, kernel_size, norm_cfg, act_cfg: Of both bottlenecks (see
            :class:`InvertedBottleneck`; they work on ``channels / 2``).

    Raises:
        ValueError: odd ``channels`` or a bad bottleneck argument.
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, spatial_dims: int, channels: int, expand_ratio: int = 4,
                 kernel_size: int = 3, norm_cfg: Any = DEFAULT_NORM,
                 act_cfg: Any = DEFAULT_ACT) -> None:
        super().__init__()
        if check_int(channels, 'channels', 2) % 2:
            raise ValueError(f'a reversible coupling splits the channels in two halves; '
                             f'channels must be even, got {channels}')
        half = channels // 2
        self.f = InvertedBottleneck(spatial_dims, half, expand_ratio, kernel_size, norm_cfg,
                                    act_cfg)
        self.g = InvertedBottleneck(spatial_dims, half, expand_ratio, kernel_size, norm_cfg,
                                    act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> ``(N, C, *spatial)``."""
        x1, x2 = x.chunk(2, dim=1)
        y1 = x1 + self.f(x2)
        return torch.cat([y1, x2 + self.g(y1)], dim=1)

    def inverse(self, y: Tensor) -> Tensor:
        """The input whose output is ``y`` (exact up to rounding)."""
        y1, y2 = y.chunk(2, dim=1)
        x2 = y2 - self.g(y1)
        return torch.cat([y1 - self.f(x2), x2], dim=1)

    def backward_step(self, y: Tensor, grad_y: Tensor, grads: Dict[int, Tensor]
                      ) -> Tuple[Tensor, Tensor]:
        """Rebuild this block's input from its output ``y`` and back-propagate ``grad_y``.

        G is recomputed under autograd first (its input ``y1`` is known), which gives ``x2``;
        then F on ``x2``, which gives ``x1``. Only one bottleneck's graph is alive at a time.
        Parameter gradients are accumulated into ``grads`` (keyed by ``id(param)``).

        Returns:
            ``(x, grad_x)``.
        """
        y1, y2 = y.chunk(2, dim=1)
        grad_y1, grad_y2 = grad_y.chunk(2, dim=1)
        g_y1, grad_from_g = _recompute(self.g, y1, grad_y2, grads)
        grad_y1 = grad_y1 + grad_from_g
        x2 = y2 - g_y1
        del g_y1
        f_x2, grad_from_f = _recompute(self.f, x2, grad_y1, grads)
        x1 = y1 - f_x2
        return torch.cat([x1, x2], dim=1), torch.cat([grad_y1, grad_y2 + grad_from_f], dim=1)


def _recompute(fn: nn.Module, x: Tensor, grad_out: Tensor, grads: Dict[int, Tensor]
               ) -> Tuple[Tensor, Tensor]:
    """``fn(x)`` (detached) and the vector-Jacobian product for ``x``; parameter gradients
    are added to ``grads``."""
    params = [p for p in fn.parameters() if p.requires_grad]
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        out = fn(leaf)
        found = torch.autograd.grad(out, [leaf, *params], grad_out, allow_unused=True)
    for param, grad in zip(params, found[1:]):
        if grad is not None:
            key = id(param)
            grads[key] = grad if key not in grads else grads[key] + grad
    grad_x = found[0] if found[0] is not None else torch.zeros_like(x)
    return out.detach(), grad_x


@contextlib.contextmanager
def _running_stats_kept(module: nn.Module) -> Iterator[None]:
    """Restore the running statistics of training norms after a recomputation (the forward
    pass already updated them once)."""
    saved = [(m, {k: b.clone() for k, b in m.named_buffers(recurse=False) if b is not None})
             for m in module.modules()
             if isinstance(m, _NormBase) and m.training and m.track_running_stats]
    try:
        yield
    finally:
        with torch.no_grad():
            for norm, buffers in saved:
                for key, value in buffers.items():
                    getattr(norm, key).copy_(value)


class _ReversibleFunction(torch.autograd.Function):
    """Runs a :class:`ReversibleSequence` keeping only its output for the backward pass."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, seq: ReversibleSequence, *params: Tensor) -> Tensor:
        ctx.seq = seq
        ctx.param_ids = [id(p) for p in params]
        ctx.autocast = (x.device.type, torch.is_autocast_enabled(x.device.type),
                        torch.get_autocast_dtype(x.device.type))
        y = x
        for block in seq.blocks:  # autograd is off inside Function.forward
            y = block(y)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad_y: Tensor) -> Tuple[Optional[Tensor], ...]:
        (y,) = ctx.saved_tensors
        device, enabled, dtype = ctx.autocast
        grads: Dict[int, Tensor] = {}
        y = y.detach()
        with torch.autocast(device, dtype=dtype, enabled=enabled), \
                _running_stats_kept(ctx.seq), torch.no_grad():
            for block in reversed(ctx.seq.blocks):
                y, grad_y = block.backward_step(y, grad_y, grads)
        return (grad_y, None, *[grads.get(key) for key in ctx.param_ids])


class ReversibleSequence(nn.Module):
    """``depth`` :class:`ReversibleCoupling` s that store no activations while training.

    With autograd on, the whole sequence is one autograd node that keeps only its output; the
    inputs of every block are rebuilt during the backward pass (see the module docstring).
    Without autograd (inference) or with ``reversible=False`` the blocks run normally.

    Args:
        spatial_dims: 3 or 2.
        channels: Channels (even).
        depth: Number of couplings.
        expand_ratio, kernel_size, norm_cfg, act_cfg: Of the bottlenecks.
        reversible: Use the memory-free autograd function while training.

    Example:
        >>> seq = ReversibleSequence(3, 8, depth=2)
        >>> x = torch.rand(1, 8, 6, 6, 6, requires_grad=True)
        >>> seq(x).sum().backward()  # stores one (1, 8, 6, 6, 6) tensor, nothing else
        >>> x.grad.shape
        torch.Size([1, 8, 6, 6, 6])
    """

    stores_no_activations = True  # activation checkpointing would only add a forward
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, spatial_dims: int, channels: int, depth: int = 1, expand_ratio: int = 4,
                 kernel_size: int = 3, norm_cfg: Any = DEFAULT_NORM, act_cfg: Any = DEFAULT_ACT,
                 reversible: bool = True) -> None:
        super().__init__()
        check_int(depth, 'depth', 1)
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.reversible = reversible
        self.blocks = nn.ModuleList(
            ReversibleCoupling(spatial_dims, channels, expand_ratio, kernel_size, norm_cfg,
                               act_cfg) for _ in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> ``(N, C, *spatial)``."""
        params = [p for p in self.parameters() if p.requires_grad]
        if self.reversible and torch.is_grad_enabled() and (x.requires_grad or params):
            return _ReversibleFunction.apply(x, self, *params)
        for block in self.blocks:
            x = block(x)
        return x

    def inverse(self, y: Tensor) -> Tensor:
        """The input whose output is ``y``."""
        for block in reversed(self.blocks):
            y = block.inverse(y)
        return y
