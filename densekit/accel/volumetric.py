"""The 3D inference fast path used by densekit's sliding window (results equal within rounding).

Part of :mod:`densekit.accel` (path name ``volumetric``): every op below runs only where
:func:`densekit.accel.use` allows it - CPU float32 tensors, no autocast, no tracing / export /
compile, switch on - and otherwise the reference op runs unchanged. So on a GPU nothing here
runs (in particular the per-channel cancellation check of :func:`instance_stats`, a host sync
on a GPU, is free on CPU where the data already is on the host), and half-precision inputs get
the reference kernels. :func:`instance_stats` itself accumulates half inputs in float32, so a
direct call is safe in float16 too.

Profiled on a 2-core CPU, a 3D U-Net window spends ~80% in convolutions and ~10% in instance
norm. Under :func:`fast_inference` (no autograd):

* 3D convolutions with a spatial kernel run on oneDNN also for the small batch-1 inputs for
  which PyTorch's heuristic (tuned for 2D) picks its im2col kernel, 1.5-3.5x slower on volumes,
  and on channels-last (NDHWC) activations, which oneDNN reads without reordering them (~1.8x
  on 16-channel 64^3 layers); the network's activations stay channels-last;
* transposed convs whose stride equals their kernel are one matrix product and a pixel shuffle;
* instance norm takes its statistics as one float32 sum and one sum of squares per channel
  (:func:`instance_stats`) instead of a three-pass Welford reduction, and applies
  ``x * a + d`` in one fused op;
* densekit's own blocks (:mod:`~densekit.blocks.residual`) do the normalisation in place
  over the fresh conv output (after an in-place shift by a mean estimate, so nothing cancels),
  then the LeakyReLU and the residual add in place.

Foreign networks (e.g. MONAI's ``DynUNet``) get the first two through a ``TorchFunctionMode``;
a functional call cannot know whether its input is still needed, so their normalisation is out
of place, and channels whose mean dwarfs their spread fall back to the reference kernel.
With autograd enabled nothing changes: training runs the reference path.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from densekit.accel.policy import fast_paths_enabled, use

__all__ = ['fast_inference', 'is_fast_inference', 'instance_norm_act_', 'instance_stats']

_STATE = threading.local()


def is_fast_inference(x: Optional[Tensor] = None) -> bool:
    """Whether the caller runs inside :func:`fast_inference` without autograd, and
    :mod:`densekit.accel` allows the ``volumetric`` path (on ``x``, when given)."""
    if not getattr(_STATE, 'depth', 0) or torch.is_grad_enabled():
        return False
    return use('volumetric', x) if x is not None else fast_paths_enabled('volumetric')


_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _is_dense(x: Tensor) -> bool:
    """Contiguous, or channels-last (NHWC / NDHWC) contiguous."""
    if x.is_contiguous():
        return True
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.dim())
    return fmt is not None and x.is_contiguous(memory_format=fmt)


_STATS_BLOCK = 4096  # voxels per partial sum of the channels-last statistics


def _channels_last_stats(x: Tensor, eps: float) -> Tuple[Tensor, Tensor]:
    """:func:`instance_stats` of a channels-last tensor, accurate to ~1e-7.

    A float32 sum over the strided voxel axis loses ~1e-4 of the variance (which the
    normalisation then amplifies), and Welford's ``var_mean`` is 3x slower than the fast path
    it serves. Instead the voxels are cut into blocks of 4096: per block, one batched GEMM gives
    the sums of squares (the diagonal of ``X^T X``; cheap while there are few channels, where
    the big volumes are) and a sum gives the sums; the blocks are then added in float64.
    """
    n, c = x.shape[:2]
    if x.dtype in _LOW_PRECISION:  # float16 sums of squares overflow at 65504
        mean, inv_std = _channels_last_stats(x.float(), eps)
        return mean, inv_std
    if c > 64:  # deep, small levels: Welford is cheap there and a C x C product is not
        var, mean = torch.var_mean(x, dim=tuple(range(2, x.dim())), correction=0)
        return mean.reshape(-1), torch.rsqrt(var.reshape(-1).clamp_(min=0).add_(eps))
    flat = x.permute(0, *range(2, x.dim()), 1).reshape(n, -1, c)  # (N, S, C), a view
    count = flat.shape[1]
    block = _STATS_BLOCK if count % _STATS_BLOCK == 0 else count
    parts = flat.reshape(-1, block, c)
    squares = torch.diagonal(torch.bmm(parts.transpose(1, 2), parts), dim1=1, dim2=2)
    total = parts.sum(1).reshape(n, -1, c).sum(1, dtype=torch.float64).reshape(-1)
    total_sq = squares.reshape(n, -1, c).sum(1, dtype=torch.float64).reshape(-1)
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_(min=0)
    return mean.to(x.dtype), torch.rsqrt(var.add_(eps)).to(x.dtype)


def instance_stats(x: Tensor, eps: float, shift_in_place: bool = False
                   ) -> Optional[Tuple[Tensor, Tensor]]:
    """Per-(sample, channel) mean and ``1 / sqrt(var + eps)`` of an ``(N, C, *spatial)`` tensor.

    One float32 sum and one sum of squares per channel (two vectorised passes, against the
    three-pass Welford reduction of ``F.instance_norm`` on CPU). ``E[x^2] - E[x]^2`` cancels
    when the mean is large against the spread, so:

    * ``shift_in_place=True`` first subtracts a per-channel estimate of the mean (from a
      strided subsample) from ``x`` *in place*; the returned mean is then that of the shifted
      ``x``, which is what the normalisation applies to;
    * otherwise channels whose mean exceeds ~3 standard deviations make it return None (the
      caller falls back to the exact reference kernel).

    A channels-last ``x`` (``_is_dense``) gets blocked, float64-combined statistics instead
    (no shift, never None). Float16 / bfloat16 inputs are accumulated in float32 (a float16
    sum of squares of a 64^3 channel overflows).

    Returns:
        ``(mean, inv_std)``, each ``(N * C,)`` (float32 for half inputs, else ``x.dtype``), or
        None (see above).
    """
    if not x.is_contiguous():
        return _channels_last_stats(x, eps)
    flat = x.view(x.shape[0] * x.shape[1], -1)
    count = flat.shape[1]
    if shift_in_place:
        stride = max(count // 4096, 1)
        flat.sub_(flat[:, ::stride].mean(1, keepdim=True))
    acc = torch.float32 if x.dtype in _LOW_PRECISION else None
    mean = flat.sum(1, dtype=acc).div_(count)
    var = torch.linalg.vector_norm(flat, dim=1, dtype=acc).square_().div_(count)
    var = var.sub_(mean * mean)
    if not shift_in_place and bool((mean * mean > 10.0 * var.clamp(min=0) + 1e-12).any()):
        return None
    return mean, torch.rsqrt(var.clamp_(min=0).add_(eps))


def _affine(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], eps: float,
            shift_in_place: bool = False) -> Optional[Tuple[Tensor, Tensor]]:
    """Per-channel ``(scale, shift)`` with ``IN(x) = x * scale + shift``, shaped to broadcast."""
    n, c = x.shape[:2]
    stats = instance_stats(x, eps, shift_in_place)
    if stats is None:
        return None
    mean, inv_std = stats  # float32 for half inputs: scale and shift are formed there
    scale = inv_std if weight is None else inv_std * weight.to(inv_std.dtype).repeat(n)
    shift = -mean * scale
    if bias is not None:
        shift = shift + bias.to(inv_std.dtype).repeat(n)
    shape = (n, c) + (1,) * (x.dim() - 2)
    return scale.view(shape).to(x.dtype), shift.view(shape).to(x.dtype)


def instance_norm_act_(x: Tensor, norm: nn.Module, negative_slope: Optional[float] = None
                       ) -> Tensor:
    """In place: ``x = leaky_relu(instance_norm(x))`` (no activation if ``negative_slope`` is None).

    Args:
        x: ``(N, C, *spatial)`` contiguous tensor nobody else reads, e.g. a fresh conv output.
        norm: The ``nn.InstanceNorm{2,3}d`` whose affine parameters and eps are used.
        negative_slope: LeakyReLU slope (0 = ReLU), or None.

    Returns:
        ``x``.
    """
    if not _is_dense(x):
        x = x.contiguous()
    scale, shift = _affine(x, norm.weight if norm.affine else None,
                           norm.bias if norm.affine else None, norm.eps, shift_in_place=True)
    torch.addcmul(shift, x, scale, out=x)
    if negative_slope is not None:
        F.leaky_relu_(x, negative_slope)
    return x


def _instance_norm(x: Tensor, running_mean: Any = None, running_var: Any = None,
                   weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
                   use_input_stats: bool = True, momentum: float = 0.1, eps: float = 1e-5
                   ) -> Optional[Tensor]:
    if not use_input_stats or x.dim() < 3 or not _is_dense(x) \
            or not use('volumetric', x, weight, bias):
        return None
    affine = _affine(x, weight, bias, eps)
    return None if affine is None else torch.addcmul(affine[1], x, affine[0])


def _triple(value: Any) -> List[int]:
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)] * 3


def _conv3d(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: Any = 1,
            padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Optional[Tensor]:
    """oneDNN for every 3D conv with a spatial kernel: for batch-1 inputs of under ~20k
    ``C * D * H`` PyTorch picks its im2col kernel, which is 1.5-3.5x slower on 3D volumes."""
    if (x.dim() != 5 or isinstance(padding, str) or weight.shape[2:].numel() == 1
            or not _MKLDNN or not use('volumetric', x, weight, bias)):
        return None
    # oneDNN runs channels-last (NDHWC) activations without reordering them to its blocked
    # layout and back: ~1.8x faster for the wide, few-channel layers that dominate a U-Net
    fmt = torch.channels_last_3d
    return torch.mkldnn_convolution(x.contiguous(memory_format=fmt),
                                    weight.contiguous(memory_format=fmt), bias,
                                    _triple(padding), _triple(stride), _triple(dilation), groups)


def _conv_transpose3d(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                      stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                      groups: int = 1, dilation: Any = 1) -> Optional[Tensor]:
    """A transposed conv whose stride equals its kernel (the usual U-Net upsampling) is one
    matrix product and a pixel shuffle."""
    kernel = list(weight.shape[2:])
    if (x.dim() != 5 or not use('volumetric', x, weight, bias) or groups != 1
            or _triple(stride) != kernel
            or any(_triple(padding)) or any(_triple(output_padding))
            or _triple(dilation) != [1, 1, 1]):
        return None
    n, cin, d, h, w = x.shape
    cout = weight.shape[1]
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last_3d):
        # (N*D*H*W, C_in) @ (C_in, C_out * k^3), scattered to an NDHWC result
        y = torch.mm(x.permute(0, 2, 3, 4, 1).reshape(-1, cin), weight.reshape(cin, -1))
        y = y.view(n, d, h, w, cout, *kernel).permute(0, 1, 5, 2, 6, 3, 7, 4)
        out = y.reshape(n, d * kernel[0], h * kernel[1], w * kernel[2], cout)
        out = out.permute(0, 4, 1, 2, 3)
        return out if bias is None else out.add_(bias.view(1, -1, 1, 1, 1))
    mat = weight.reshape(cin, -1).t()
    y = torch.stack([torch.mm(mat, x[i].reshape(cin, -1)) for i in range(n)]) if n > 1 else \
        torch.mm(mat, x.reshape(cin, -1))[None]
    y = y.view(n, cout, *kernel, d, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4)
    out = y.reshape(n, cout, d * kernel[0], h * kernel[1], w * kernel[2])
    return out if bias is None else out.add_(bias.view(1, -1, 1, 1, 1))


_MKLDNN = torch.backends.mkldnn.is_available()
_ROUTES = {F.instance_norm: _instance_norm, F.conv3d: _conv3d,
           F.conv_transpose3d: _conv_transpose3d}


class _FastOps(TorchFunctionMode):
    """Route ``F.instance_norm``, ``F.conv3d`` and ``F.conv_transpose3d`` (no autograd) to the
    fast kernels above; anything they do not cover runs unchanged."""

    def __torch_function__(self, func: Any, types: Any, args: Tuple = (),
                           kwargs: Optional[Dict] = None) -> Any:
        kwargs = kwargs or {}
        route = _ROUTES.get(func)
        if route is not None and not torch.is_grad_enabled():
            out = route(*args, **kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)


@contextlib.contextmanager
def fast_inference(ops: bool = True) -> Iterator[None]:
    """Run the enclosed inference on the fast path (no autograd inside).

    Args:
        ops: Also reroute functional ops of foreign networks (``F.instance_norm``).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3), torch.nn.InstanceNorm3d(4))
        >>> x = torch.rand(1, 1, 8, 8, 8)
        >>> with torch.no_grad():
        ...     ref = net(x)
        ...     with fast_inference():
        ...         fast = net(x)
        >>> bool((ref - fast).abs().max() < 1e-4)
        True
    """
    _STATE.depth = getattr(_STATE, 'depth', 0) + 1
    try:
        with (_FastOps() if ops else contextlib.nullcontext()):
            yield
    finally:
        _STATE.depth -= 1
