"""Adaptive max pooling that traces with dynamic sizes (2D and 3D).

``F.adaptive_max_pool2d/3d`` export to ONNX only when the output size divides the input size,
and the tracer bakes the sizes in. :func:`adaptive_max_pool` computes the same windows
(along each axis, output ``i`` of ``S`` over an input of ``L`` takes
``floor(i L / S) .. ceil((i + 1) L / S) - 1``) with the sizes as tensors: a gather of the
window members (the last member repeated to the longest window) and a max, axis by axis (the
windows are boxes, so the max separates). The values are the same as PyTorch's (a max is
exact); standard ONNX ops only (Range, Gather, ReduceMax).
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor

__all__ = ['adaptive_max_pool', 'size_tensor']

Size = Union[int, Tensor]


def size_tensor(x: Tensor, dim: int) -> Tensor:
    """``x.shape[dim]`` as a 0-d int64 CPU tensor (traced as a Shape op, not a constant; on the
    CPU whatever ``x``'s device, so the size arithmetic never waits for an accelerator)."""
    return torch._shape_as_tensor(x)[dim]


def _as_size(value: Size) -> Tensor:
    if isinstance(value, Tensor):
        return value.to(device='cpu', dtype=torch.long).reshape(())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'adaptive_max_pool: output sizes must be positive ints, got '
                         f'{value!r}')
    return torch.tensor(value, dtype=torch.long)


def _pool_axis(x: Tensor, dim: int, out: Tensor) -> Tensor:
    length = size_tensor(x, dim)
    index = torch.arange(out)  # the window arithmetic on the CPU, the gather on x's device
    start = torch.div(index * length, out, rounding_mode='floor')
    end = -torch.div(-(index + 1) * length, out, rounding_mode='floor')  # ceil
    longest = (end - start).max()
    members = torch.minimum(start.unsqueeze(1) + torch.arange(longest),
                            (end - 1).unsqueeze(1))  # (S, K): the last member repeated
    picked = x.index_select(dim, members.reshape(-1).to(x.device))
    shape = list(x.shape)
    shape[dim:dim + 1] = [out, -1]
    return picked.reshape(shape).amax(dim + 1)


def adaptive_max_pool(x: Tensor, size: Sequence[Size]) -> Tensor:
    """``F.adaptive_max_pool2d`` / ``3d`` of ``(N, C, *spatial)`` to ``size`` (ints or 0-d
    tensors, e.g. ``size_tensor`` of another map), written so that it exports with dynamic
    sizes.

    Raises:
        ValueError: ``size`` does not give one positive size per spatial axis.

    Example:
        >>> x = torch.arange(10.).view(1, 1, 1, 10)
        >>> adaptive_max_pool(x, (1, 4)).flatten().tolist()
        [2.0, 4.0, 7.0, 9.0]
    """
    size = list(size)
    if x.dim() < 3 or len(size) != x.dim() - 2:
        raise ValueError(f'adaptive_max_pool: size needs one entry per spatial axis of the '
                         f'{tuple(x.shape)} input, got {len(size)}')
    for axis, value in enumerate(size):
        x = _pool_axis(x, 2 + axis, _as_size(value))
    return x
