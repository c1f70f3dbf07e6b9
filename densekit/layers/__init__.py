"""Dimension-generic building blocks (2D NCHW / 3D NCDHW) shared by densekit necks and backbones.

* :class:`LayerFactory` - conv / norm / activation / pooling / upsampling keyed by
  ``spatial_dims``;
* :func:`normalize_spec` - one form for every way of writing a layer spec;
* :class:`ConvNormAct` / :class:`SeparableConvNormAct` - mmcv ``ConvModule``-compatible units;
* :mod:`~densekit.layers.fold` - BatchNorm folding, the eval fast path;
* :class:`ChannelLayerNorm` - LayerNorm over the channels of an NCHW / NCDHW tensor;
* :mod:`~densekit.layers.taps` - convolutions that skip taps falling in the zero padding;
* :mod:`~densekit.layers.polyphase` - dilated depthwise convs on polyphase components.
"""
from densekit.layers.conv_norm_act import (
    ConvNormAct,
    SeparableConvNormAct,
    conv_forward,
    fuse_model,
)
from densekit.layers.factory import (
    SPATIAL_DIMS,
    LayerFactory,
    as_tuple,
    check_features,
    check_spatial_dims,
    interp_mode,
    resize,
)
from densekit.layers.fold import FoldedParams, can_fold, fold_conv_bn, fuse_conv_bn, set_fast_eval
from densekit.layers.norm import ChannelLayerNorm
from densekit.layers.polyphase import (
    cat_phases,
    channels_last,
    conv_polyphase,
    empty_channels_last,
    is_channels_last,
)
from densekit.layers.spec import LayerSpec, normalize_spec
from densekit.layers.taps import conv_skip_padding, valid_tap_fraction, zone_plan

__all__ = [
    'SPATIAL_DIMS', 'LayerFactory', 'as_tuple', 'check_features', 'check_spatial_dims',
    'interp_mode', 'resize', 'LayerSpec', 'normalize_spec', 'ConvNormAct',
    'SeparableConvNormAct', 'conv_forward', 'fuse_model', 'FoldedParams', 'can_fold',
    'fold_conv_bn', 'fuse_conv_bn', 'set_fast_eval', 'conv_skip_padding', 'valid_tap_fraction',
    'zone_plan', 'cat_phases', 'channels_last', 'conv_polyphase', 'empty_channels_last',
    'is_channels_last', 'ChannelLayerNorm',
]
