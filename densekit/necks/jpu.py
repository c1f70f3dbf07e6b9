"""Joint Pyramid Upsampling (FastFCN) for 2D (NCHW) and 3D (NCDHW) features.

Accepts mmseg ``JPU``'s arguments and returns the same tuple; mmseg JPU checkpoints load
directly (their ``conv_layers.{i}.0.*`` / ``dilation_layers.{i}.0.*`` keys are renamed on load).
"""
from __future__ import annotations

from typing import Any, List, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from densekit.accel import use
from densekit.errors import positive_int
from densekit.layers import (
    ConvNormAct,
    LayerFactory,
    SeparableConvNormAct,
    as_tuple,
    cat_phases,
    channels_last,
    check_features,
    empty_channels_last,
    resize,
)
from densekit.necks.convert import PeerCheckpointMixin
from densekit.registry import MODELS

__all__ = ['JPU']


def _check_dilations(dilations: Any, spatial_dims: int) -> Tuple[Any, ...]:
    if not isinstance(dilations, (list, tuple)) or not dilations:
        raise ValueError(f'dilations must be a non-empty tuple of rates, got {dilations!r}')
    for rate in dilations:
        as_tuple(rate, spatial_dims, 'dilations item', minimum=1)
    return tuple(dilations)


@MODELS.register_module()
class JPU(PeerCheckpointMixin, BaseModule):
    """Joint Pyramid Upsampling neck (Wu et al., FastFCN 2019), mmseg-compatible, 2D or 3D.

    Each used level goes through a 3x3 ConvNormAct to ``mid_channels``, is resized to the first
    used level and concatenated; depthwise-separable 3x3 convs at ``dilations`` run on the
    concatenation and their outputs are concatenated again.

    Args:
        in_channels: Channels of each input level.
        mid_channels: Channels after the per-level convs and of each dilation branch.
        start_level: First input level used.
        end_level: End input level (exclusive); -1 means all levels.
        dilations: One rate per branch (an int, or a per-axis tuple).
        align_corners: ``align_corners`` of the (bi/tri)linear resize.
        conv_cfg, norm_cfg, act_cfg: Layer specs of every ConvNormAct.
        init_cfg: mmengine init config.
        spatial_dims: 2 for NCHW inputs, 3 for NCDHW inputs.
        channels_last: Use channels-last memory order where :mod:`densekit.accel` allows its
            ``channels_last`` path (the JPU output is then channels-last):
            for the whole inference, and in training for the separable branches, where
            oneDNN's depthwise kernels are several times faster that way (its channels-last
            backward kernels of dense 3x3 convs are slower, so those stay NCHW in training).

    Raises:
        ValueError: bad levels, dilations or layer specs.

    Example:
        >>> jpu = JPU(in_channels=(8, 16, 32), mid_channels=4)
        >>> feats = [torch.rand(2, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate((8, 16, 32))]
        >>> [tuple(o.shape) for o in jpu(feats)]
        [(2, 8, 32, 32), (2, 16, 16, 16), (2, 16, 32, 32)]
    """

    peer_rules = 'mmseg.JPU'

    def __init__(self, in_channels: Sequence[int] = (512, 1024, 2048), mid_channels: int = 512,
                 start_level: int = 0, end_level: int = -1,
                 dilations: Sequence[Any] = (1, 2, 4, 8), align_corners: bool = False,
                 conv_cfg: Any = None, norm_cfg: Any = dict(type='BN'),  # noqa: B006
                 act_cfg: Any = dict(type='ReLU'), init_cfg: Any = None,  # noqa: B006
                 spatial_dims: int = 2, channels_last: bool = True) -> None:
        super().__init__(init_cfg=init_cfg)
        layers = LayerFactory(spatial_dims)
        self.spatial_dims = layers.spatial_dims
        if not isinstance(in_channels, (list, tuple)) or not in_channels or not all(
                isinstance(c, int) and c > 0 for c in in_channels):
            raise ValueError(f'in_channels must be a non-empty tuple of positive ints, got '
                             f'{in_channels!r}')
        positive_int(mid_channels, 'mid_channels')
        self.in_channels = tuple(in_channels)
        self.mid_channels = mid_channels
        self.num_ins = len(self.in_channels)
        if end_level == -1:
            self.backbone_end_level = self.num_ins
        elif isinstance(end_level, int) and 0 < end_level <= self.num_ins:
            self.backbone_end_level = end_level
        else:
            raise ValueError(f'end_level={end_level!r} must be -1 or in [1, {self.num_ins}] '
                             f'(exclusive end) for in_channels={self.in_channels}')
        if not isinstance(start_level, int) or not 0 <= start_level < self.backbone_end_level:
            raise ValueError(f'start_level={start_level!r} must be in [0, '
                             f'{self.backbone_end_level - 1}] for in_channels='
                             f'{self.in_channels} and end_level={end_level}')
        self.start_level = start_level
        self.dilations = _check_dilations(dilations, self.spatial_dims)
        self.align_corners = align_corners
        self.mode = layers.interp_mode('linear')
        self.channels_last = channels_last
        self.fast_eval = True  # set_fast_eval(model, False) forbids the fast paths

        self.conv_layers = nn.ModuleList(
            ConvNormAct(self.spatial_dims, self.in_channels[i], mid_channels, 3, padding=1,
                        conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
            for i in range(self.start_level, self.backbone_end_level))
        concat_channels = (self.backbone_end_level - self.start_level) * mid_channels
        self.dilation_layers = nn.ModuleList(
            SeparableConvNormAct(self.spatial_dims, concat_channels, mid_channels, 3,
                                 padding=rate, dilation=rate, dw_norm_cfg=norm_cfg,
                                 dw_act_cfg=None, pw_norm_cfg=norm_cfg, pw_act_cfg=act_cfg,
                                 conv_cfg=conv_cfg)
            for rate in self.dilations)

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Joint upsampling of the used levels.

        Args:
            inputs: One map per ``in_channels`` entry, finest first, NCHW or NCDHW.

        Returns:
            ``inputs[start_level:end - 1]`` unchanged, then the JPU output of
            ``len(dilations) * mid_channels`` channels at the first used level's size; e.g.
            512/1024/2048 channels at 64/32/16 px give ``(in0, in1, (N, 2048, 64, 64))``.
        """
        check_features(inputs, self.num_ins, 'JPU.forward(inputs)', self.spatial_dims)
        used = range(self.start_level, self.backbone_end_level)
        size = inputs[self.start_level].shape[2:]
        first = inputs[self.start_level]
        fast = self.fast_eval and self.channels_last and use('channels_last', first)
        if not torch.is_grad_enabled() and fast and use('inplace', first):
            concat = self._forward_buffers(inputs, used, size)
        else:
            feats = [conv(inputs[i]) for conv, i in zip(self.conv_layers, used)]
            feats = [feats[0]] + [resize(f, size, mode=self.mode, align_corners=self.align_corners)
                                  for f in feats[1:]]
            feat = torch.cat(feats, dim=1)
            if fast:  # only the separable branches gain from it in training
                feat = channels_last(feat)  # once: every branch keeps it for its backward
                concat = cat_phases([layer.forward_deferred(feat)
                                     for layer in self.dilation_layers], size)
            else:
                concat = torch.cat([layer(feat) for layer in self.dilation_layers], dim=1)
        outs: List[Tensor] = [inputs[i] for i in range(self.start_level,
                                                       self.backbone_end_level - 1)]
        outs.append(concat)
        return tuple(outs)

    def _forward_buffers(self, inputs: Sequence[Tensor], used: range, size: Any) -> Tensor:
        """Inference fast path: channels-last, every part written into its concat buffer."""
        first = inputs[self.start_level]
        feat = self._buffer(first, len(used))
        for k, (conv, i) in enumerate(zip(self.conv_layers, used)):
            x = channels_last(inputs[i])  # converted one level at a time: a small transient
            if k == 0:
                conv(x, out=self._slice(feat, k))
            else:
                self._slice(feat, k).copy_(resize(conv(x), size, mode=self.mode,
                                                  align_corners=self.align_corners))
            del x
        concat = self._buffer(first, len(self.dilations))
        for k, layer in enumerate(self.dilation_layers):
            layer(feat, out=self._slice(concat, k))
        return concat

    def _buffer(self, like: Tensor, parts: int) -> Tensor:
        """Uninitialised concatenation buffer of ``parts * mid_channels`` channels."""
        shape = (like.shape[0], parts * self.mid_channels, *like.shape[2:])
        return empty_channels_last(shape, like)

    def _slice(self, buffer: Tensor, k: int) -> Tensor:
        return buffer[:, k * self.mid_channels:(k + 1) * self.mid_channels]
