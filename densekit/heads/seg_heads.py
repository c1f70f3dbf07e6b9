"""Segmentation decode heads on mmseg's ``BaseDecodeHead``: FCN, Semantic FPN, DUC, DeepLabv3+.

They accept the arguments of their mmseg namesakes (``FCNHead``, ``FPNHead``,
``DepthwiseSeparableASPPHead``), so a config switches by changing only ``type``, with the same
state-dict keys. ``spatial_dims=3`` makes every conv, norm, pool, dropout and resize of a head
volumetric (NCDHW; bilinear becomes trilinear), one implementation for both; ``loss`` /
``predict`` stay mmseg's 2D ``SegDataSample`` pipeline, 3D models call ``forward``.

Attributes read as on mmcv's ``ConvModule`` (``head.convs[0].padding == 1``,
``kernel_size == (3, 3)``) are provided by :class:`~densekit.layers.ConvNormAct`.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from mmengine.registry import DefaultScope
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor, nn

from densekit.errors import ArgumentError, positive_int
from densekit.heads.aspp_head import ASPPHead
from densekit.heads.dims import SpatialHeadMixin, pixel_shuffle
from densekit.layers import ConvNormAct, SeparableConvNormAct, resize
from densekit.registry import MODELS

__all__ = ['FCNHead', 'FPNHead', 'DUCHead', 'DepthwiseSeparableASPPHead']


class _MMSegHead(SpatialHeadMixin, BaseDecodeHead):
    """``BaseDecodeHead`` built in mmseg's scope (its default losses have unscoped names), with
    ``spatial_dims`` 2 or 3."""

    def __init__(self, spatial_dims: int = 2, **kwargs: Any) -> None:
        spatial_dims = self._check_spatial_dims(spatial_dims)
        with DefaultScope.overwrite_default_scope('mmseg'):
            super().__init__(**kwargs)
        self._build_spatial(spatial_dims)

    def _block(self, in_channels: int, out_channels: int, kernel_size: int = 3,
               dilation: int = 1) -> ConvNormAct:
        return ConvNormAct(self.spatial_dims, in_channels, out_channels, kernel_size,
                           padding=kernel_size // 2 * dilation, dilation=dilation,
                           conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)


@MODELS.register_module()
class FCNHead(_MMSegHead):
    """FCN head (Long et al.): ``num_convs`` conv blocks, optional concat with the input.

    Args:
        num_convs: Number of conv blocks (0 = classifier on the input directly).
        kernel_size: Kernel of the conv blocks (odd).
        concat_input: Concatenate the input with the conv output before the classifier.
        dilation: Dilation of the conv blocks.
        spatial_dims: 2 (NCHW) or 3 (NCDHW).
        **kwargs: mmseg ``BaseDecodeHead`` arguments (``in_channels``, ``channels``,
            ``num_classes``, ``in_index``, ``norm_cfg``, ``loss_decode``, ...).

    Example:
        >>> head = FCNHead(in_channels=16, channels=8, num_classes=3)
        >>> head([torch.rand(2, 16, 9, 11)]).shape
        torch.Size([2, 3, 9, 11])
    """

    def __init__(self, num_convs: int = 2, kernel_size: int = 3, concat_input: bool = True,
                 dilation: int = 1, spatial_dims: int = 2, **kwargs: Any) -> None:
        if not isinstance(num_convs, int) or num_convs < 0:
            raise ValueError(f'num_convs must be an int >= 0, got {num_convs!r}')
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be a positive odd int, got {kernel_size!r}')
        super().__init__(spatial_dims=spatial_dims, **kwargs)
        if num_convs == 0 and self.in_channels != self.channels:
            raise ValueError(f'num_convs=0 needs in_channels == channels, got '
                             f'{self.in_channels} and {self.channels}')
        self.num_convs, self.kernel_size = num_convs, kernel_size
        self.concat_input, self.dilation = concat_input, dilation
        blocks = [self._block(self.in_channels if i == 0 else self.channels, self.channels,
                              kernel_size, dilation) for i in range(num_convs)]
        self.convs = nn.Sequential(*blocks) if blocks else nn.Identity()
        if concat_input:
            self.conv_cat = self._block(self.in_channels + self.channels, self.channels,
                                        kernel_size)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Logits ``(N, num_classes, *S)`` at the resolution ``S`` of the selected input."""
        x = self._transform_inputs(inputs)
        out = self.convs(x)
        if self.concat_input:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.cls_seg(out)


@MODELS.register_module()
class FPNHead(_MMSegHead):
    """Semantic FPN head (Kirillov et al.): each level is upsampled to the finest by
    conv + 2x upsampling steps, the levels are summed and classified.

    Args:
        feature_strides: Stride of each input level, the finest (smallest) first, e.g.
            ``(4, 8, 16, 32)``; as in mmseg, levels need not be powers of two (``(4, 6, 16)``),
            the final resize to the finest level absorbs the rest.
        spatial_dims: 2 (NCHW) or 3 (NCDHW; the 2x steps and the final resize are trilinear).
        **kwargs: mmseg ``BaseDecodeHead`` arguments; ``in_channels``/``in_index`` are lists
            and ``input_transform='multiple_select'`` is implied.

    Example:
        >>> head = FPNHead(in_channels=[8, 8], in_index=[0, 1], feature_strides=(4, 8),
        ...                channels=8, num_classes=3)
        >>> head([torch.rand(1, 8, 16, 16), torch.rand(1, 8, 8, 8)]).shape
        torch.Size([1, 3, 16, 16])
    """

    def __init__(self, feature_strides: Sequence[int], spatial_dims: int = 2,
                 **kwargs: Any) -> None:
        kwargs.setdefault('input_transform', 'multiple_select')
        super().__init__(spatial_dims=spatial_dims, **kwargs)
        strides = list(feature_strides)
        if len(strides) != len(self.in_channels):
            raise ArgumentError(f'feature_strides has {len(strides)} entries but in_channels '
                                f'has {len(self.in_channels)}; give one stride per input level')
        if not all(isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0
                   for s in strides) or min(strides) != strides[0]:
            raise ArgumentError(f'feature_strides must be positive with the smallest (the '
                                f'finest level) first, got {tuple(strides)}')
        self.feature_strides = tuple(strides)
        self.scale_heads = nn.ModuleList()
        for level, stride in enumerate(strides):
            # as mmseg: one conv (+ 2x upsampling) per octave below the finest level, at least 1
            steps = max(1, int(math.log2(stride) - math.log2(strides[0])))
            blocks: list[nn.Module] = []
            for k in range(steps):
                blocks.append(self._block(self.in_channels[level] if k == 0 else self.channels,
                                          self.channels))
                if stride != strides[0]:
                    blocks.append(self._factory.upsample(scale_factor=2, mode='linear',
                                                         align_corners=self.align_corners))
            self.scale_heads.append(nn.Sequential(*blocks))

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Logits at the finest input's resolution."""
        feats = self._transform_inputs(inputs)
        out = self.scale_heads[0](feats[0])
        for level in range(1, len(self.feature_strides)):
            out = out + resize(self.scale_heads[level](feats[level]), size=out.shape[2:],
                               mode=self.interp, align_corners=self.align_corners)
        return self.cls_seg(out)


@MODELS.register_module()
class DUCHead(_MMSegHead):
    """Dense Upsampling Convolution head (Wang et al., "Understanding Convolution for Semantic
    Segmentation"): a conv predicts ``num_classes * r^2`` channels at the feature stride and a
    pixel shuffle rearranges them into full-resolution logits, instead of bilinear upsampling.

    Args:
        upsample_factor: ``r``, the stride of the input feature map.
        num_convs: Conv blocks before the DUC projection.
        spatial_dims: 2 (NCHW) or 3 (NCDHW; the projection predicts ``num_classes * r^3``
            sub-voxel logits, shuffled by :func:`~densekit.heads.dims.pixel_shuffle`).
        **kwargs: mmseg ``BaseDecodeHead`` arguments.

    Example:
        >>> head = DUCHead(upsample_factor=8, in_channels=16, channels=8, num_classes=3)
        >>> head([torch.rand(2, 16, 5, 6)]).shape
        torch.Size([2, 3, 40, 48])
    """

    def __init__(self, upsample_factor: int = 8, num_convs: int = 1, spatial_dims: int = 2,
                 **kwargs: Any) -> None:
        positive_int(upsample_factor, 'upsample_factor')
        super().__init__(spatial_dims=spatial_dims, **kwargs)
        self.upsample_factor = upsample_factor
        self.convs = nn.Sequential(*[
            self._block(self.in_channels if i == 0 else self.channels, self.channels)
            for i in range(num_convs)])
        width = self.channels if num_convs else self.in_channels
        # the classifier predicts r^spatial_dims sub-pixel logits per class
        self.conv_seg = self._factory.conv(
            width, self.out_channels * upsample_factor ** self.spatial_dims, 3, padding=1)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Logits ``(N, num_classes, r*H, r*W)`` for an input map ``(N, C, H, W)`` (and
        ``r*D`` in 3D)."""
        return pixel_shuffle(self.cls_seg(self.convs(self._transform_inputs(inputs))),
                             self.upsample_factor)


@MODELS.register_module()
class DepthwiseSeparableASPPHead(ASPPHead):
    """DeepLabv3+ head: separable ASPP on the deep map, then a decoder that upsamples it to the
    low-level map (``c1``), concatenates the projected low-level features and refines with two
    separable 3x3 blocks.

    Args:
        c1_in_channels: Channels of the low-level map (``inputs[0]``); 0 disables the skip.
        c1_channels: Channels the low-level map is projected to.
        **kwargs: :class:`ASPPHead` arguments (``separable`` defaults to True;
            ``spatial_dims=3`` makes the skip, decoder and resize volumetric).

    Example:
        >>> head = DepthwiseSeparableASPPHead(c1_in_channels=4, c1_channels=4, in_channels=16,
        ...     channels=8, num_classes=3, dilations=(1, 2))
        >>> head([torch.rand(1, 4, 16, 16), torch.rand(1, 16, 4, 4)]).shape
        torch.Size([1, 3, 16, 16])
    """

    peer_rules = 'mmseg.ASPPHead'  # the decoder's keys already match mmseg's

    def __init__(self, c1_in_channels: int, c1_channels: int, **kwargs: Any) -> None:
        kwargs.setdefault('separable', True)
        super().__init__(**kwargs)
        if c1_in_channels < 0 or (c1_in_channels > 0 and c1_channels < 1):
            raise ValueError(f'c1_in_channels={c1_in_channels} / c1_channels={c1_channels}: '
                             'use c1_in_channels=0 for no skip, else c1_channels >= 1')
        self.c1_bottleneck = (ConvNormAct(self.spatial_dims, c1_in_channels, c1_channels, 1,
                                          conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg,
                                          act_cfg=self.act_cfg) if c1_in_channels else None)
        sep = dict(norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
        self.sep_bottleneck = nn.Sequential(
            SeparableConvNormAct(self.spatial_dims,
                                 self.channels + (c1_channels if c1_in_channels else 0),
                                 self.channels, 3, padding=1, **sep),
            SeparableConvNormAct(self.spatial_dims, self.channels, self.channels, 3, padding=1,
                                 **sep))

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Logits at the low-level map's resolution (``inputs[0]``)."""
        out = self.aspp.forward_single(self._transform_inputs(inputs))
        if self.c1_bottleneck is not None:
            c1 = self.c1_bottleneck(inputs[0])
            out = resize(out, size=c1.shape[2:], mode=self.interp,
                         align_corners=self.align_corners)
            out = torch.cat([out, c1], dim=1)
        return self.cls_seg(self.sep_bottleneck(out))
