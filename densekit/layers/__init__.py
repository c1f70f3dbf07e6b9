"""Dimension-generic building blocks (2D NCHW / 3D NCDHW) shared by densekit necks and backbones.

* :class:`LayerFactory` - conv / norm / activation / pooling / upsampling keyed by
  ``spatial_dims``;
* :func:`normalize_spec` - one form for every way of writing a layer spec;
* :class:`ConvNormAct` / :class:`SeparableConvNormAct` - mmcv ``ConvModule``-compatible units;
* :mod:`~densekit.layers.fold` - BatchNorm folding (deploy, and the ``fold_bn`` fast path);
* :class:`ChannelLayerNorm` - LayerNorm over the channels of an NCHW / NCDHW tensor.

The fast paths themselves (tap skipping, polyphase convs, ...) live in :mod:`densekit.accel`;
their helpers are re-exported here for the necks.
"""
from densekit.accel.polyphase import (
    cat_phases,
    channels_last,
    conv_polyphase,
    empty_channels_last,
    is_channels_last,
)
from densekit.accel.taps import conv_skip_padding, valid_tap_fraction, zone_plan
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
from densekit.layers.fold import can_fold, fold_conv_bn, fuse_conv_bn, set_fast_eval
from densekit.layers.norm import ChannelLayerNorm, GlobalResponseNorm
from densekit.layers.pooling import adaptive_max_pool, size_tensor
from densekit.layers.spec import LayerSpec, normalize_spec

__all__ = [
    'GlobalResponseNorm',
    'SPATIAL_DIMS', 'LayerFactory', 'as_tuple', 'check_features', 'check_spatial_dims',
    'interp_mode', 'resize', 'LayerSpec', 'normalize_spec', 'ConvNormAct',
    'SeparableConvNormAct', 'conv_forward', 'fuse_model', 'can_fold',
    'fold_conv_bn', 'fuse_conv_bn', 'set_fast_eval', 'conv_skip_padding', 'valid_tap_fraction',
    'zone_plan', 'cat_phases', 'channels_last', 'conv_polyphase', 'empty_channels_last',
    'is_channels_last', 'ChannelLayerNorm', 'adaptive_max_pool', 'size_tensor',
]
