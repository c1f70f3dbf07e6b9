"""Dilated convolution with learnable spacings (DCLS), 2D (NCHW) and 3D (NCDHW).

Each of the ``kernel_count`` elements of a filter has a weight and a learnable, real-valued
position inside a ``dilated_kernel_size`` grid. Every forward builds a dense kernel by
spreading each element's weight over the grid cells with an interpolation, then runs an
ordinary convolution (dilation 1, 'same' padding ``dilated_kernel_size // 2``):

* ``'bilinear'``: cell weight ``prod_d max(0, 1 - |idx_d - p_d|)`` (exactly the element on an
  integer position);
* ``'gauss'``: cell weight ``prod_d exp(-0.5 ((idx_d - p_d) / sigma_d)^2)`` with a learnable
  per-element ``sigma = |SIG| + 0.27``, normalised to sum 1 over the grid.

Positions are centred (0 = grid centre) and clamped to ``+-(dilated_kernel_size // 2)`` in the
forward (no gradient beyond the border). They start as ``N(0, 0.5)`` samples, or on a regular
dilated grid (``init_positions='grid'``, needs ``kernel_count = k**spatial_dims``), where the
bilinear DCLS conv equals a dilated ``k``-kernel conv.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densekit.errors import positive_int
from densekit.layers import as_tuple, check_spatial_dims
from densekit.registry import MODELS

__all__ = ['DCLSConv']

_CONV_FNS = {2: F.conv2d, 3: F.conv3d}
_SIGMA_FLOOR = 0.27


@MODELS.register_module()
class DCLSConv(nn.Module):
    """Convolution whose kernel elements sit at learnable positions.

    Args:
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_count: Elements per filter (e.g. 9, or 34 for ConvNeXt-style depthwise use).
        dilated_kernel_size: Size of the grid the elements live in (odd; int or per axis).
        stride: Stride of the final convolution.
        groups: Conv groups (``in_channels`` for depthwise).
        bias: Add a learnable bias.
        method: ``'bilinear'`` or ``'gauss'``.
        init_positions: ``'random'`` (``N(0, 0.5)``) or ``'grid'`` (a regular dilated grid).
        position_std: Standard deviation of the random position init.

    Raises:
        ValueError: bad channels / groups, an even or non-positive grid size, an unknown
            ``method`` / ``init_positions``, or a ``'grid'`` init with a ``kernel_count`` that
            is not a ``spatial_dims``-th power.

    Example:
        >>> conv = DCLSConv(2, 8, 8, kernel_count=9, dilated_kernel_size=7, groups=8)
        >>> conv(torch.rand(1, 8, 13, 10)).shape
        torch.Size([1, 8, 13, 10])
        >>> conv.dense_kernel().shape
        torch.Size([8, 1, 7, 7])
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 kernel_count: int, dilated_kernel_size: Union[int, Sequence[int]],
                 stride: Union[int, Sequence[int]] = 1, groups: int = 1, bias: bool = True,
                 method: str = 'bilinear', init_positions: str = 'random',
                 position_std: float = 0.5) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        for name, value in (('in_channels', in_channels), ('out_channels', out_channels),
                            ('kernel_count', kernel_count), ('groups', groups)):
            positive_int(value, name)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'groups={groups} must divide in_channels={in_channels} and '
                             f'out_channels={out_channels}')
        size = as_tuple(dilated_kernel_size, spatial_dims, 'dilated_kernel_size', minimum=1)
        if any(s % 2 == 0 for s in size):
            raise ValueError(f'dilated_kernel_size={dilated_kernel_size!r} must be odd on every '
                             f'axis (the positions are centred)')
        if method not in ('bilinear', 'gauss'):
            raise ValueError(f"method must be 'bilinear' or 'gauss', got {method!r}")
        if init_positions not in ('random', 'grid'):
            raise ValueError(f"init_positions must be 'random' or 'grid', got "
                             f'{init_positions!r}')
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_count, self.dilated_kernel_size = kernel_count, size
        self.stride = as_tuple(stride, spatial_dims, 'stride', minimum=1)
        self.method = method
        shape = (out_channels, in_channels // groups, kernel_count)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.P = nn.Parameter(torch.empty((spatial_dims,) + shape))
        self.SIG = nn.Parameter(torch.full((spatial_dims,) + shape, 0.23)) \
            if method == 'gauss' else None
        self._grid_k: Optional[int] = None
        if init_positions == 'grid':
            k = round(kernel_count ** (1.0 / spatial_dims))
            if k ** spatial_dims != kernel_count:
                raise ValueError(f"init_positions='grid' needs kernel_count = k**{spatial_dims}, "
                                 f'got kernel_count={kernel_count}')
            self._grid_k = k
        self.position_std = float(position_std)
        self.reset_parameters()

    @property
    def limits(self) -> Tuple[int, ...]:
        """Largest allowed |position| per axis (``dilated_kernel_size // 2``)."""
        return tuple(s // 2 for s in self.dilated_kernel_size)

    def grid_dilation(self) -> Tuple[int, ...]:
        """Per-axis spacing of the ``'grid'`` init (``(size - 1) // (k - 1)``)."""
        k = self._grid_k or 1
        return tuple((s - 1) // (k - 1) if k > 1 else 1 for s in self.dilated_kernel_size)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Kaiming-uniform weights (fan-in of ``kernel_count`` taps), positions per the init."""
        fan_in = self.weight.shape[1] * self.kernel_count
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.kaiming_uniform_(self.weight.view(self.weight.shape[0], -1), a=math.sqrt(5))
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)
        if self._grid_k is None:
            nn.init.normal_(self.P, 0.0, self.position_std)
        else:
            k = self._grid_k
            axes = [(torch.arange(k, dtype=self.P.dtype) - (k - 1) / 2) * dil
                    for dil in self.grid_dilation()]
            mesh = torch.meshgrid(*axes, indexing='ij')  # element index = row-major grid index
            for d in range(self.spatial_dims):
                self.P[d].copy_(mesh[d].reshape(-1).expand_as(self.P[d]))
        for d, lim in enumerate(self.limits):
            self.P[d].clamp_(-lim, lim)

    def _axis_weights(self, d: int) -> Tensor:
        """Interpolation weights of every element over the cells of axis ``d``:
        ``(C_out, C_in/g, kernel_count, size_d)``."""
        lim = self.limits[d]
        pos = self.P[d].clamp(-lim, lim).unsqueeze(-1)
        idx = torch.arange(-lim, lim + 1, dtype=pos.dtype, device=pos.device)
        diff = idx - pos
        if self.method == 'bilinear':
            return torch.relu(1 - diff.abs())
        sigma = self.SIG[d].abs().unsqueeze(-1) + _SIGMA_FLOOR
        w = torch.exp(-0.5 * (diff / sigma) ** 2)
        return w / (w.sum(dim=-1, keepdim=True) + 1e-7)

    def dense_kernel(self) -> Tensor:
        """The dense kernel ``(C_out, C_in/g, *dilated_kernel_size)`` of the next forward."""
        letters = 'xyz'[:self.spatial_dims]
        terms = ['oik'] + [f'oik{c}' for c in letters]
        spec = ','.join(terms) + '->oi' + letters
        return torch.einsum(spec, self.weight,
                            *[self._axis_weights(d) for d in range(self.spatial_dims)])

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C_in, *S)`` -> ``(N, C_out, *S')`` ('same' size at stride 1)."""
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(f'DCLSConv expects (N, {self.in_channels}, *spatial) with '
                             f'{self.spatial_dims} spatial dims, got {tuple(x.shape)}')
        return _CONV_FNS[self.spatial_dims](x, self.dense_kernel(), self.bias, self.stride,
                                            self.limits, 1, self.groups)

    def extra_repr(self) -> str:  # noqa: D102
        return (f'{self.in_channels}, {self.out_channels}, kernel_count={self.kernel_count}, '
                f'dilated_kernel_size={self.dilated_kernel_size}, method={self.method!r}, '
                f'groups={self.groups}')

