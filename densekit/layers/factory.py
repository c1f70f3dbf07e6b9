"""One factory for dimension-sensitive layers, keyed by ``spatial_dims`` (2 = NCHW, 3 = NCDHW).

Blocks never name ``Conv2d`` or ``'bilinear'`` themselves: they ask a :class:`LayerFactory` for
the conv / norm / activation / pooling / dropout class and the interpolation mode of their
dimensionality, so one implementation serves images and volumes.

Example:
    >>> f = LayerFactory(3)
    >>> f.conv(8, 16, 3, padding=1)
    Conv3d(8, 16, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1))
    >>> f.interp_mode('linear')
    'trilinear'
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densekit.layers.spec import LayerSpec, normalize_spec

__all__ = ['SPATIAL_DIMS', 'LayerFactory', 'check_spatial_dims', 'as_tuple', 'resize',
           'interp_mode', 'check_features']

SPATIAL_DIMS = (2, 3)

_CONVS = {2: nn.Conv2d, 3: nn.Conv3d}
_POOLS = {
    'max': {2: nn.MaxPool2d, 3: nn.MaxPool3d},
    'avg': {2: nn.AvgPool2d, 3: nn.AvgPool3d},
    'adaptive_avg': {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d},
    'adaptive_max': {2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d},
}
_DROPOUTS = {2: nn.Dropout2d, 3: nn.Dropout3d}
# name -> (state-dict abbreviation as in mmcv's ConvModule, class or {spatial_dims: class})
_NORMS: Dict[str, Tuple[str, Union[type, Dict[int, type]]]] = {
    'BN': ('bn', {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}),
    'BN2d': ('bn', {2: nn.BatchNorm2d}),
    'BN3d': ('bn', {3: nn.BatchNorm3d}),
    'SyncBN': ('bn', nn.SyncBatchNorm),
    'GN': ('gn', nn.GroupNorm),
    'IN': ('in', {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}),
    'IN2d': ('in', {2: nn.InstanceNorm2d}),
    'IN3d': ('in', {3: nn.InstanceNorm3d}),
}
_ACTS: Dict[str, type] = {
    'ReLU': nn.ReLU, 'LeakyReLU': nn.LeakyReLU, 'PReLU': nn.PReLU, 'ReLU6': nn.ReLU6,
    'ELU': nn.ELU, 'GELU': nn.GELU, 'SiLU': nn.SiLU, 'Swish': nn.SiLU, 'Sigmoid': nn.Sigmoid,
    'Tanh': nn.Tanh, 'HSwish': nn.Hardswish, 'Hardswish': nn.Hardswish,
    'HSigmoid': nn.Hardsigmoid, 'Hardsigmoid': nn.Hardsigmoid, 'Mish': nn.Mish,
}
_INPLACE_ACTS = (nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.ELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid,
                 nn.Mish)
_GENERIC_MODES = ('nearest', 'nearest-exact', 'area')
_LINEAR_MODES = {2: 'bilinear', 3: 'trilinear'}


def check_spatial_dims(spatial_dims: Any, argname: str = 'spatial_dims') -> int:
    """Return ``spatial_dims`` if it is 2 or 3, else raise ``ValueError`` naming ``argname``."""
    if isinstance(spatial_dims, bool) or spatial_dims not in SPATIAL_DIMS:
        raise ValueError(f'{argname} must be one of {SPATIAL_DIMS} (2 = NCHW images, 3 = NCDHW '
                         f'volumes), got {spatial_dims!r}')
    return int(spatial_dims)


def as_tuple(value: Any, spatial_dims: int, argname: str, minimum: int = 0) -> Tuple[int, ...]:
    """Expand an int to a per-axis tuple, or check a per-axis sequence has ``spatial_dims`` items.

    Raises:
        ValueError: a sequence of the wrong length, or an item below ``minimum``.
        TypeError: items that are not ints.

    Example:
        >>> as_tuple(2, 3, 'dilation')
        (2, 2, 2)
    """
    if isinstance(value, int) and not isinstance(value, bool):
        items: Tuple[Any, ...] = (value,) * spatial_dims
    elif isinstance(value, (tuple, list)):
        if len(value) != spatial_dims:
            raise ValueError(f'{argname}={tuple(value)!r} has {len(value)} items; expected one '
                             f'int or {spatial_dims} per-axis ints (spatial_dims={spatial_dims})')
        items = tuple(value)
    else:
        raise TypeError(f'{argname} must be an int or a sequence of {spatial_dims} ints, '
                        f'got {value!r}')
    for item in items:
        if not isinstance(item, int) or isinstance(item, bool):
            raise TypeError(f'{argname}={value!r}: every item must be an int')
        if item < minimum:
            raise ValueError(f'{argname}={value!r}: every item must be >= {minimum}')
    return items


def interp_mode(mode: str, spatial_dims: int) -> str:
    """Interpolation mode for ``F.interpolate`` on a ``spatial_dims`` tensor.

    ``'linear'``, ``'bilinear'`` and ``'trilinear'`` all mean (multi)linear and map to the mode
    of the right dimensionality, so a 2D config can drive a 3D model unchanged.
    """
    spatial_dims = check_spatial_dims(spatial_dims)
    if mode in ('linear', 'bilinear', 'trilinear'):
        return _LINEAR_MODES[spatial_dims]
    if mode in _GENERIC_MODES or (mode == 'bicubic' and spatial_dims == 2):
        return mode
    raise ValueError(f'interpolation mode {mode!r} is not available for spatial_dims='
                     f'{spatial_dims}; use linear, nearest, nearest-exact or area')


def resize(x: Tensor, size: Optional[Sequence[int]] = None,
           scale_factor: Optional[Union[float, Sequence[float]]] = None, mode: str = 'linear',
           align_corners: Optional[bool] = None) -> Tensor:
    """Resize an NCHW or NCDHW tensor; the mode is adapted to its dimensionality.

    Example:
        >>> resize(torch.zeros(1, 2, 4, 5, 6), size=(8, 10, 12)).shape
        torch.Size([1, 2, 8, 10, 12])
    """
    mode = interp_mode(mode, x.dim() - 2)
    if mode in ('nearest', 'nearest-exact', 'area'):
        align_corners = None
    if size is not None and not torch.jit.is_tracing():
        size = tuple(int(s) for s in size)  # a jit trace keeps the sizes symbolic instead
    elif size is not None:
        size = tuple(size)
    return F.interpolate(x, size=size, scale_factor=scale_factor, mode=mode,
                         align_corners=align_corners)


def check_features(features: Any, expected: int, argname: str, spatial_dims: int) -> None:
    """Check a neck's input: a sequence of ``expected`` tensors of ``spatial_dims + 2`` dims.

    Raises:
        TypeError: ``features`` is not a list / tuple of tensors.
        ValueError: wrong number of features or wrong tensor rank.
    """
    if not isinstance(features, (list, tuple)):
        raise TypeError(f'{argname} expects a list or tuple of feature maps, got '
                        f'{type(features).__name__}')
    if len(features) != expected:
        raise ValueError(f'{argname} got {len(features)} feature maps but in_channels lists '
                         f'{expected}; in_channels must have one entry per input feature')
    layout = 'NCHW' if spatial_dims == 2 else 'NCDHW'
    for i, feat in enumerate(features):
        if not isinstance(feat, Tensor) or feat.dim() != spatial_dims + 2:
            got = feat.shape if isinstance(feat, Tensor) else type(feat).__name__
            raise ValueError(f'{argname}: feature {i} must be a {spatial_dims + 2}D {layout} '
                             f'tensor (spatial_dims={spatial_dims}), got {got}')


def _registry_lookup(name: str) -> Optional[type]:
    from densekit.registry import MODELS  # lazy: layers stay importable without the registry

    try:
        return MODELS.get(name)
    except KeyError:
        return None


class LayerFactory:
    """Builds the layers of one dimensionality.

    Args:
        spatial_dims: 2 for images (NCHW), 3 for volumes (NCDHW).

    Raises:
        ValueError: ``spatial_dims`` is not 2 or 3.
    """

    def __init__(self, spatial_dims: int) -> None:
        self.spatial_dims = check_spatial_dims(spatial_dims)

    def __repr__(self) -> str:
        return f'LayerFactory(spatial_dims={self.spatial_dims})'

    # -- convolution -------------------------------------------------------------------------
    @property
    def conv_class(self) -> type:
        """``nn.Conv2d`` or ``nn.Conv3d``."""
        return _CONVS[self.spatial_dims]

    def conv(self, in_channels: int, out_channels: int, kernel_size: Any, *, stride: Any = 1,
             padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
             spec: Any = None, argname: str = 'conv_cfg') -> nn.Module:
        """Build a convolution; ``spec`` None / ``'Conv'`` / ``'Conv2d'`` / ``'Conv3d'`` give the
        torch conv of this dimensionality, any other name is looked up in the registry."""
        layer = normalize_spec(spec, argname) or LayerSpec('Conv')
        cls = layer.type if isinstance(layer.type, type) else None
        if cls is None:
            if layer.name in ('Conv', 'ConvNd', 'Conv2d', 'Conv3d'):
                if layer.name[-2:] in ('2d', '3d') and int(layer.name[-2]) != self.spatial_dims:
                    raise ValueError(f'{argname} type {layer.name!r} does not match '
                                     f'spatial_dims={self.spatial_dims}; use type="Conv"')
                cls = self.conv_class
            else:
                cls = _registry_lookup(layer.name)
                if cls is None:
                    raise ValueError(f'{argname}: unknown conv type {layer.name!r}')
        return cls(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                   dilation=dilation, groups=groups, bias=bias, **layer.kwargs)

    # -- normalisation -----------------------------------------------------------------------
    def norm(self, spec: Any, num_features: int,
             argname: str = 'norm_cfg') -> Tuple[str, nn.Module]:
        """Build a normalisation layer and its mmcv state-dict name (``'bn'``, ``'gn'``, ``'in'``).

        Raises:
            ValueError: unknown type, wrong dimensionality, or a GroupNorm whose ``num_groups``
                does not divide ``num_features``.
        """
        layer = normalize_spec(spec, argname)
        if layer is None:
            raise ValueError(f'{argname} is None; nothing to build')
        kwargs = dict(layer.kwargs)
        requires_grad = kwargs.pop('requires_grad', True)
        kwargs.setdefault('eps', 1e-5)
        if isinstance(layer.type, type):
            cls, abbr = layer.type, _abbreviation(layer.type)
        elif layer.name in _NORMS:
            abbr, table = _NORMS[layer.name]
            if isinstance(table, dict):
                if self.spatial_dims not in table:
                    raise ValueError(f'{argname} type {layer.name!r} does not match '
                                     f'spatial_dims={self.spatial_dims}')
                cls = table[self.spatial_dims]
            else:
                cls = table
        else:
            cls = _registry_lookup(layer.name)
            if cls is None:
                raise ValueError(f'{argname}: unknown norm type {layer.name!r}; expected one of '
                                 f'{sorted(_NORMS)}')
            abbr = _abbreviation(cls)
        if issubclass(cls, nn.GroupNorm):
            groups = kwargs.pop('num_groups', None)
            if not isinstance(groups, int) or groups < 1:
                raise ValueError(f'{argname}: GroupNorm needs a positive int num_groups, '
                                 f'got {groups!r}')
            if num_features % groups:
                raise ValueError(f'{argname}: num_groups={groups} does not divide the '
                                 f'{num_features} channels of this layer')
            module = cls(groups, num_features, **kwargs)
        else:
            module = cls(num_features, **kwargs)
        for param in module.parameters():
            param.requires_grad_(requires_grad)
        return abbr, module

    # -- activation --------------------------------------------------------------------------
    def act(self, spec: Any, inplace: bool = True, argname: str = 'act_cfg') -> nn.Module:
        """Build an activation; ``inplace`` is passed to the activations that accept it."""
        layer = normalize_spec(spec, argname)
        if layer is None:
            raise ValueError(f'{argname} is None; nothing to build')
        if isinstance(layer.type, type):
            cls = layer.type
        else:
            cls = _ACTS.get(layer.name) or _registry_lookup(layer.name)
            if cls is None:
                raise ValueError(f'{argname}: unknown activation {layer.name!r}; expected one of '
                                 f'{sorted(_ACTS)}')
        kwargs = dict(layer.kwargs)
        if issubclass(cls, _INPLACE_ACTS):
            kwargs.setdefault('inplace', inplace)
        return cls(**kwargs)

    # -- pooling, dropout, upsampling ------------------------------------------------------------
    def pool(self, kind: str, *args: Any, **kwargs: Any) -> nn.Module:
        """Build a pooling layer: ``kind`` is max, avg, adaptive_avg or adaptive_max."""
        if kind not in _POOLS:
            raise ValueError(f'pool kind must be one of {sorted(_POOLS)}, got {kind!r}')
        return _POOLS[kind][self.spatial_dims](*args, **kwargs)

    def dropout(self, p: float) -> nn.Module:
        """Channel dropout (``Dropout2d`` / ``Dropout3d``)."""
        return _DROPOUTS[self.spatial_dims](p)

    def interp_mode(self, mode: str = 'linear') -> str:
        """``F.interpolate`` mode of this dimensionality (``'linear'`` -> bi/trilinear)."""
        return interp_mode(mode, self.spatial_dims)

    def upsample(self, size: Any = None, scale_factor: Any = None, mode: str = 'linear',
                 align_corners: Optional[bool] = None) -> nn.Module:
        """An ``nn.Upsample`` of this dimensionality."""
        mode = self.interp_mode(mode)
        if mode in _GENERIC_MODES:
            align_corners = None
        return nn.Upsample(size=size, scale_factor=scale_factor, mode=mode,
                           align_corners=align_corners)

    def is_norm(self, module: nn.Module) -> bool:
        """Whether ``module`` is a normalisation layer."""
        return isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm))


def _abbreviation(cls: type) -> str:
    if hasattr(cls, '_abbr_'):
        return cls._abbr_
    if issubclass(cls, nn.modules.instancenorm._InstanceNorm):
        return 'in'
    if issubclass(cls, nn.modules.batchnorm._BatchNorm):
        return 'bn'
    if issubclass(cls, nn.GroupNorm):
        return 'gn'
    if issubclass(cls, nn.LayerNorm):
        return 'ln'
    return 'norm_layer'
