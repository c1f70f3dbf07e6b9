"""SPD-Conv ("No More Strided Convolutions"): space-to-depth then a non-strided conv.

Space-to-depth with scale ``s`` moves every ``s x s`` (``s x s x s`` in 3D) neighbourhood into
channels, so a stride-``s`` downsampling keeps every input value; a stride-1 conv
(:class:`~densekit.layers.ConvNormAct`) then mixes them. Channel layout of
:func:`space_to_depth`: channel ``phase * C + c``, where ``phase`` enumerates the offsets
inside the neighbourhood in row-major order over the spatial axes (offset ``(0, 0)`` first,
then ``(0, 1)``, ...). :func:`depth_to_space` is its exact inverse.

**Odd sizes:** a spatial size that is not a multiple of ``scale`` is zero-padded at its end
(bottom / right / back) when ``pad=True`` (the default), so the output size is
``ceil(size / scale)`` - the size a stride-2, kernel-3, padding-1 conv gives; with
``pad=False`` such inputs raise ``ValueError``.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from densekit.errors import positive_int
from densekit.layers import ConvNormAct, check_spatial_dims
from densekit.registry import MODELS

__all__ = ['space_to_depth', 'depth_to_space', 'SPDConv']


def _check_scale(scale: Any) -> int:
    positive_int(scale, 'scale')
    return scale


def space_to_depth(x: Tensor, scale: int = 2, pad: bool = True) -> Tensor:
    """``(N, C, *S)`` -> ``(N, C * scale**d, *ceil(S / scale))`` for 2D or 3D ``x``.

    Raises:
        ValueError: a size not divisible by ``scale`` with ``pad=False``, or a bad rank.

    Example:
        >>> space_to_depth(torch.rand(1, 3, 5, 8)).shape
        torch.Size([1, 12, 3, 4])
    """
    scale = _check_scale(scale)
    dims = x.dim() - 2
    check_spatial_dims(dims, 'x.dim() - 2')
    sizes = list(x.shape[2:])
    extra = [(-s) % scale for s in sizes]
    if any(extra):
        if not pad:
            raise ValueError(f'space_to_depth: spatial size {tuple(sizes)} is not a multiple '
                             f'of scale={scale}; pass pad=True to zero-pad the end')
        pads = []
        for e in reversed(extra):
            pads += [0, e]
        x = F.pad(x, pads)
        sizes = list(x.shape[2:])
    n, c = x.shape[:2]
    split = [n, c]
    for s in sizes:
        split += [s // scale, scale]
    x = x.reshape(split)
    # (n, c, s0', r0, s1', r1, ...) -> (n, r0, r1, ..., c, s0', s1', ...)
    perm = [0] + [3 + 2 * i for i in range(dims)] + [1] + [2 + 2 * i for i in range(dims)]
    x = x.permute(perm)
    return x.reshape(n, c * scale ** dims, *[s // scale for s in sizes])


def depth_to_space(x: Tensor, scale: int = 2, size: Sequence[int] | None = None) -> Tensor:
    """Inverse of :func:`space_to_depth`; ``size`` crops the zero padding of odd sizes.

    Example:
        >>> x = torch.rand(1, 2, 5, 7)
        >>> torch.equal(depth_to_space(space_to_depth(x), size=(5, 7)), x)
        True
    """
    scale = _check_scale(scale)
    dims = x.dim() - 2
    check_spatial_dims(dims, 'x.dim() - 2')
    n, cs = x.shape[:2]
    if cs % scale ** dims:
        raise ValueError(f'depth_to_space: {cs} channels are not a multiple of '
                         f'scale**{dims}={scale ** dims}')
    c = cs // scale ** dims
    small = list(x.shape[2:])
    x = x.reshape([n] + [scale] * dims + [c] + small)
    perm = [0, dims + 1]
    for i in range(dims):
        perm += [dims + 2 + i, 1 + i]
    x = x.permute(perm).reshape([n, c] + [s * scale for s in small])
    if size is not None:
        if len(size) != dims:
            raise ValueError(f'size={tuple(size)} needs {dims} entries')
        x = x[(slice(None), slice(None)) + tuple(slice(0, int(s)) for s in size)]
    return x


@MODELS.register_module()
class SPDConv(nn.Module):
    """Space-to-depth (``scale``) followed by a stride-1 :class:`ConvNormAct`.

    Args:
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        in_channels: Input channels (the conv sees ``in_channels * scale**spatial_dims``).
        out_channels: Output channels.
        kernel_size: Kernel of the non-strided conv ('same' padding ``kernel_size // 2``).
        scale: Space-to-depth factor (2 in the paper).
        pad: Zero-pad sizes that are not multiples of ``scale`` (else raise ``ValueError``).
        norm_cfg: Norm spec (default BN).
        act_cfg: Activation spec (default SiLU, as in the paper's YOLO models).

    Example:
        >>> SPDConv(2, 8, 16)(torch.rand(1, 8, 97, 131)).shape
        torch.Size([1, 16, 49, 66])
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int,
                 kernel_size: int = 3, scale: int = 2, pad: bool = True,
                 norm_cfg: Any = dict(type='BN'),  # noqa: B006
                 act_cfg: Any = dict(type='SiLU')) -> None:  # noqa: B006
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.scale = _check_scale(scale)
        positive_int(in_channels, 'in_channels')
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be a positive odd int, got {kernel_size!r}')
        self.pad = bool(pad)
        self.conv = ConvNormAct(spatial_dims, in_channels * scale ** spatial_dims, out_channels,
                                kernel_size, padding=kernel_size // 2, norm_cfg=norm_cfg,
                                act_cfg=act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C_in, *S)`` -> ``(N, C_out, *ceil(S / scale))``."""
        return self.conv(space_to_depth(x, self.scale, self.pad))
