"""Lite R-ASPP decode head (MobileNetV3, Howard et al. 2019), for images and volumes.

The deepest map goes through a 1x1 conv block whose output is gated, channel by channel and
region by region, by a sigmoid of its average-pooled context (a large average pool, then a
1x1 conv and a sigmoid, upsampled back). Then, from the deepest skip level to the shallowest,
the result is upsampled to that level, concatenated with a 1x1 projection of it and fused by a
1x1 conv block. Only 1x1 convs: no dilated 3x3 branches as in ASPP.

Takes the arguments of mmseg's ``LRASPPHead`` (``branch_channels`` plus ``BaseDecodeHead``'s,
``input_transform='multiple_select'``), has its state-dict keys, so mmseg checkpoints load
directly, and computes its outputs wherever mmseg's head runs. Two additions:

* mmseg's fixed ``AvgPool2d(49, stride=(16, 20))`` (sized for 1024x2048 Cityscapes crops)
  fails on maps smaller than 49 pixels; densekit raises a clear error there by default (an
  :class:`~densekit.errors.InputSizeError`, also a ``RuntimeError`` as mmseg's), pools the
  whole axis with ``clamp_pool=True``, and pools globally with ``pool_kernel=None``
  (torchvision's variant);
* ``spatial_dims=3`` builds the same head from 3D layers (volumes ``(N, C, D, H, W)``).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densekit.errors import ArgumentError, InputSizeError
from densekit.heads.seg_heads import _MMSegHead
from densekit.layers import ConvNormAct, LayerFactory, as_tuple, check_spatial_dims, resize
from densekit.layers.factory import check_features
from densekit.registry import MODELS

__all__ = ['LRASPPHead', 'ContextPool']


class ContextPool(nn.Module):
    """Average pooling (no padding, floor mode) for a head's context branch.

    Args:
        kernel_size: Window per axis (an int for every axis), or None for a global average.
        stride: Step per axis (default: the window).
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        clamp: Clamp the window to the input where the input is smaller; False raises
            :class:`~densekit.errors.InputSizeError` there (as ``nn.AvgPool2d`` fails).

    Example:
        >>> ContextPool(49, (16, 20), clamp=True)(torch.rand(1, 4, 20, 30)).shape
        torch.Size([1, 4, 1, 1])
    """

    def __init__(self, kernel_size: Union[None, int, Sequence[int]],
                 stride: Union[None, int, Sequence[int]] = None, spatial_dims: int = 2,
                 clamp: bool = False) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.clamp = bool(clamp)
        self.kernel_size: Optional[Tuple[int, ...]] = None
        self.stride: Optional[Tuple[int, ...]] = None
        if kernel_size is not None:
            self.kernel_size = as_tuple(kernel_size, spatial_dims, 'pool_kernel', minimum=1)
            self.stride = self.kernel_size if stride is None else \
                as_tuple(stride, spatial_dims, 'pool_stride', minimum=1)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, *spatial)`` -> ``(N, C, *pooled)``."""
        if self.kernel_size is None:
            return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)
        small = [a for a, (k, s) in enumerate(zip(self.kernel_size, x.shape[2:])) if k > s]
        if small and not self.clamp:
            raise InputSizeError(
                f'the context pool window {self.kernel_size} is larger than the map '
                f'{tuple(x.shape[2:])}; use pool_kernel=None (global pooling) or '
                f'clamp_pool=True, or feed larger inputs')
        # an axis the window covers whole is averaged out (the clamped window's one output);
        # the others pool with the constant window, so a jit trace holds at other sizes
        full = tuple(a + 2 for a, (k, s) in enumerate(zip(self.kernel_size, x.shape[2:]))
                     if k >= s)
        if full:
            x = x.mean(dim=full, keepdim=True)
        if len(full) == self.spatial_dims:
            return x
        kernel = tuple(1 if a + 2 in full else k for a, k in enumerate(self.kernel_size))
        stride = tuple(1 if a + 2 in full else st for a, st in enumerate(self.stride))
        pool = F.avg_pool2d if self.spatial_dims == 2 else F.avg_pool3d
        return pool(x, kernel, stride)

    def extra_repr(self) -> str:
        if self.kernel_size is None:
            return 'global'
        return f'kernel_size={self.kernel_size}, stride={self.stride}, clamp={self.clamp}'


@MODELS.register_module()
class LRASPPHead(_MMSegHead):
    """Lite R-ASPP head (module docstring), a drop-in for mmseg's ``LRASPPHead``.

    Args:
        branch_channels: Output channels of the 1x1 projection of each skip level, one per
            input level except the deepest (mmseg default ``(32, 64)`` for three levels).
        pool_kernel: Context pooling window, or None for global average pooling.
        pool_stride: Context pooling step (default: ``(16, 20)``, mmseg's).
        clamp_pool: Clamp the pooling window to maps smaller than it; False (mmseg's
            behaviour) raises :class:`~densekit.errors.InputSizeError` on them.
        spatial_dims: 2 for images, 3 for volumes.
        **kwargs: mmseg ``BaseDecodeHead`` arguments: ``in_channels`` and ``in_index`` (lists,
            shallow to deep), ``channels``, ``num_classes``, ``norm_cfg``, ``act_cfg``,
            ``align_corners``, ``dropout_ratio``, ``loss_decode``...

    Raises:
        ValueError: ``input_transform`` other than ``'multiple_select'``, ``branch_channels``
            not one positive int per skip level (an :class:`~densekit.errors.ArgumentError`,
            also an ``AssertionError`` as mmseg's assert), or bad pooling sizes.

    Example:
        >>> head = LRASPPHead(in_channels=(8, 16, 32), in_index=(0, 1, 2), channels=16,
        ...                   branch_channels=(4, 8), num_classes=3, pool_kernel=None)
        >>> feats = [torch.rand(1, 8, 33, 35), torch.rand(1, 16, 17, 18), torch.rand(1, 32, 9, 9)]
        >>> head(feats).shape
        torch.Size([1, 3, 33, 35])
    """

    def __init__(self, branch_channels: Sequence[int] = (32, 64),
                 pool_kernel: Union[None, int, Sequence[int]] = 49,
                 pool_stride: Union[None, int, Sequence[int]] = (16, 20),
                 clamp_pool: bool = False, spatial_dims: int = 2, **kwargs: Any) -> None:
        spatial_dims = check_spatial_dims(spatial_dims)
        kwargs.setdefault('input_transform', 'multiple_select')
        if kwargs['input_transform'] != 'multiple_select':
            raise ValueError(f"LRASPPHead reads several levels: input_transform must be "
                             f"'multiple_select', got {kwargs['input_transform']!r}")
        super().__init__(**kwargs)
        levels = len(self.in_channels)
        if (not isinstance(branch_channels, (list, tuple)) or len(branch_channels) != levels - 1
                or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0
                           for c in branch_channels)):
            raise ArgumentError(f'branch_channels must hold one positive int per skip level '
                             f'({levels - 1} for in_channels={tuple(self.in_channels)}), got '
                             f'{branch_channels!r}')
        if pool_kernel is not None and spatial_dims == 3 and pool_stride == (16, 20):
            pool_stride = None  # mmseg's default step is 2D; volumes step by the window
        self.branch_channels = tuple(branch_channels)
        self.spatial_dims = spatial_dims
        layers = LayerFactory(spatial_dims)
        common = dict(norm_cfg=self.norm_cfg, act_cfg=self.act_cfg, bias=False,
                      conv_cfg=self.conv_cfg)
        self.convs = nn.Sequential()
        self.conv_ups = nn.Sequential()
        for i, width in enumerate(self.branch_channels):
            self.convs.add_module(f'conv{i}', layers.conv(self.in_channels[i], width, 1,
                                                          bias=False))
            self.conv_ups.add_module(f'conv_up{i}', ConvNormAct(
                spatial_dims, self.channels + width, self.channels, 1, **common))
        self.conv_up_input = layers.conv(self.channels, self.channels, 1)
        self.aspp_conv = ConvNormAct(spatial_dims, self.in_channels[-1], self.channels, 1,
                                     **common)
        self.image_pool = nn.Sequential(
            ContextPool(pool_kernel, pool_stride, spatial_dims, clamp=clamp_pool),
            ConvNormAct(spatial_dims, self.in_channels[-1], self.channels, 1, bias=False,
                        conv_cfg=self.conv_cfg, norm_cfg=None, act_cfg=dict(type='Sigmoid')))
        if spatial_dims == 3:  # BaseDecodeHead's classifier and dropout are 2D
            self.conv_seg = layers.conv(self.channels, self.out_channels, 1)
            self.dropout = layers.dropout(self.dropout_ratio) if self.dropout_ratio > 0 else None

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Logits ``(N, num_classes, *spatial)`` at the shallowest selected level's size.

        Raises:
            TypeError / ValueError: ``inputs`` is not a list of maps, has fewer maps than
                ``in_index`` selects, or a selected map has the wrong rank or channels.
        """
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(f'LRASPPHead.forward expects a list or tuple of feature maps, '
                            f'got {type(inputs).__name__}')
        if max(self.in_index) >= len(inputs) or min(self.in_index) < -len(inputs):
            raise ValueError(f'LRASPPHead got {len(inputs)} feature maps but in_index='
                             f'{tuple(self.in_index)} selects beyond them')
        feats = self._transform_inputs(inputs)
        check_features(feats, len(self.in_channels), 'LRASPPHead.forward(inputs)',
                       self.spatial_dims)
        for level, (feat, channels) in enumerate(zip(feats, self.in_channels)):
            if feat.shape[1] != channels:
                raise ValueError(f'LRASPPHead: map in_index[{level}]={self.in_index[level]} '
                                 f'has {feat.shape[1]} channels; in_channels[{level}] is '
                                 f'{channels}')
        x = feats[-1]
        gate = resize(self.image_pool(x), size=x.shape[2:], mode='linear',
                      align_corners=self.align_corners)
        x = self.conv_up_input(self.aspp_conv(x) * gate)
        for i in range(len(self.branch_channels) - 1, -1, -1):
            x = resize(x, size=feats[i].shape[2:], mode='linear',
                       align_corners=self.align_corners)
            x = self.conv_ups[i](torch.cat([x, self.convs[i](feats[i])], dim=1))
        return self.cls_seg(x)
