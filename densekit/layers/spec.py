"""Normalise a layer specification (the ``conv_cfg`` / ``norm_cfg`` / ``act_cfg`` arguments).

A specification may be written in any of the forms OpenMMLab configs and plain Python use:

* ``None`` (no layer),
* a name: ``'BN'``, ``'ReLU'``,
* a ``(name, kwargs)`` pair: ``('GN', {'num_groups': 32})``,
* a class: ``torch.nn.GELU``,
* an mmengine dict (or ``ConfigDict``): ``dict(type='GN', num_groups=32)``.

:func:`normalize_spec` turns every form into a :class:`LayerSpec`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Union

__all__ = ['LayerSpec', 'normalize_spec']


@dataclass(frozen=True)
class LayerSpec:
    """A layer type (registry name or class) and its keyword arguments."""

    type: Union[str, type]
    kwargs: Dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The bare type name, without an mmengine scope prefix (``'mmdet.BN'`` -> ``'BN'``)."""
        if isinstance(self.type, str):
            return self.type.rsplit('.', 1)[-1]
        return self.type.__name__

    def with_defaults(self, **defaults: Any) -> LayerSpec:
        """A copy whose kwargs are ``defaults`` overridden by the spec's own kwargs."""
        return LayerSpec(self.type, {**defaults, **self.kwargs})


def normalize_spec(spec: Any, argname: str) -> Optional[LayerSpec]:
    """Turn any accepted form of layer specification into a :class:`LayerSpec`.

    Args:
        spec: ``None``, a name, a ``(name, kwargs)`` pair, a class or a dict with a ``type`` key.
        argname: Name of the argument being normalised, used in error messages.

    Returns:
        The normalised spec, or ``None`` when ``spec`` is ``None``.

    Raises:
        TypeError: ``spec`` has none of the accepted forms.
        ValueError: a dict without ``type``, or a kwargs part that is not a mapping.

    Example:
        >>> normalize_spec(dict(type='GN', num_groups=8), 'norm_cfg')
        LayerSpec(type='GN', kwargs={'num_groups': 8})
    """
    if spec is None or isinstance(spec, LayerSpec):
        return spec
    if isinstance(spec, (str, type)):
        return LayerSpec(spec, {})
    if isinstance(spec, Mapping):
        if 'type' not in spec:
            raise ValueError(f"{argname}={dict(spec)!r} has no 'type' key; expected e.g. "
                             f"dict(type='BN')")
        kwargs = dict(spec)
        layer_type = kwargs.pop('type')
        if not isinstance(layer_type, (str, type)):
            raise TypeError(f'{argname} type must be a name or a class, got {layer_type!r}')
        return LayerSpec(layer_type, kwargs)
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], (str, type)):
        if not isinstance(spec[1], Mapping):
            raise ValueError(f'{argname}={spec!r}: the second item of a (name, kwargs) pair must '
                             f'be a mapping, got {type(spec[1]).__name__}')
        return LayerSpec(spec[0], dict(spec[1]))
    raise TypeError(f'{argname} must be None, a layer name, a (name, kwargs) pair, a class or a '
                    f"dict(type=...), got {spec!r}")
