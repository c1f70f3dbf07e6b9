"""What makes an mmseg ``BaseDecodeHead`` subclass dimension-generic (2D NCHW / 3D NCDHW).

mmseg's ``BaseDecodeHead`` builds a 2D classifier (``conv_seg``) and dropout, and resizes
``resize_concat`` inputs bilinearly. :class:`SpatialHeadMixin` swaps those for the layers of
``spatial_dims`` (same state-dict keys) and leaves 2D exactly as mmseg builds it.
"""
from __future__ import annotations

from typing import Any, List, Sequence, Union

import torch
from torch import Tensor, nn

from densekit.layers import LayerFactory, check_spatial_dims, resize

__all__ = ['SpatialHeadMixin', 'pixel_shuffle']


class SpatialHeadMixin:
    """Mixin for ``BaseDecodeHead`` subclasses with a ``spatial_dims`` argument.

    Call :meth:`_check_spatial_dims` before ``BaseDecodeHead.__init__`` (so a bad value fails
    first) and :meth:`_build_spatial` after it.
    """

    spatial_dims: int
    _factory: LayerFactory

    @staticmethod
    def _check_spatial_dims(spatial_dims: Any) -> int:
        """``spatial_dims`` if it is 2 or 3, else ``ValueError`` naming the argument."""
        return check_spatial_dims(spatial_dims, 'spatial_dims')

    def _build_spatial(self, spatial_dims: int) -> None:
        """Record ``spatial_dims`` and, in 3D, rebuild the classifier and dropout in 3D."""
        self.spatial_dims = spatial_dims
        self._factory = LayerFactory(spatial_dims)
        if spatial_dims == 2:
            return  # exactly mmseg's Conv2d / Dropout2d
        self.conv_seg = self._factory.conv(self.conv_seg.in_channels,
                                           self.conv_seg.out_channels, 1)
        if self.dropout is not None:
            self.dropout = self._factory.dropout(self.dropout.p)

    @property
    def interp(self) -> str:
        """Multilinear interpolation mode of this head: ``'bilinear'`` or ``'trilinear'``."""
        return self._factory.interp_mode('linear')

    def _transform_inputs(self, inputs: Sequence[Tensor]) -> Union[Tensor, List[Tensor]]:
        """mmseg's input selection; ``resize_concat`` resizes multilinearly in any dimension."""
        if self.spatial_dims == 2 or self.input_transform != 'resize_concat':
            return super()._transform_inputs(inputs)
        picked = [inputs[i] for i in self.in_index]
        return torch.cat([resize(x, size=picked[0].shape[2:], mode=self.interp,
                                 align_corners=self.align_corners) for x in picked], dim=1)


def pixel_shuffle(x: Tensor, factor: int) -> Tensor:
    """Sub-pixel rearrangement ``(N, C*r^d, *S) -> (N, C, *(r*S))`` for ``d`` = 2 or 3 spatial
    axes; in 2D it equals ``torch.nn.functional.pixel_shuffle``, in 3D the channel index is
    ``c*r^3 + a*r^2 + b*r + e`` for the sub-voxel offsets ``(a, b, e)`` along ``(D, H, W)``.
    """
    dims = x.dim() - 2
    if dims not in (2, 3):
        raise ValueError(f'pixel_shuffle expects an NCHW or NCDHW tensor, got shape '
                         f'{tuple(x.shape)}')
    if dims == 2:
        return nn.functional.pixel_shuffle(x, factor)
    n, c, *size = x.shape
    if c % factor ** dims:
        raise ValueError(f'pixel_shuffle: {c} channels are not divisible by factor**{dims} = '
                         f'{factor ** dims}')
    out_c = c // factor ** dims
    y = x.reshape(n, out_c, *([factor] * dims), *size)
    # (n, c, r_d, r_h, r_w, D, H, W) -> (n, c, D, r_d, H, r_h, W, r_w)
    y = y.permute(0, 1, 5, 2, 6, 3, 7, 4)
    return y.reshape(n, out_c, *(s * factor for s in size))
