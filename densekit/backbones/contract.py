"""The one shape contract every densekit backbone follows.

A backbone (anything registered as a backbone: pyramid encoders, medical encoders, PIIP,
restoration bodies) tells its consumers what it returns through two attributes:

* ``out_channels``: a tuple with the channel count of every returned feature map, in the
  order ``forward`` returns them;
* ``out_strides``: a tuple with one per-axis stride tuple per returned feature map (``(H, W)``
  for 2D, ``(D, H, W)`` for 3D). The stride is absolute: the input size divided by the
  feature size, so a restoration body that keeps the resolution has ``((1, 1),)`` and a
  stride-4 ResNet stem level has ``(4, 4)``. For input sizes that are not multiples of the
  stride a feature axis is ``floor`` or ``ceil`` of ``size / stride`` (within one pixel).

``feature_info()`` gives the same in the list-of-dicts form timm users know
(``num_chs``, ``reduction``), and :func:`expected_sizes` the spatial size range of every level
for a given input. Necks and heads take ``in_channels='auto'``: densekit's registry build
fills them from ``out_channels`` (see :func:`fill_auto_channels`).
"""
from __future__ import annotations

import copy
import inspect
from typing import Any, Dict, List, Sequence, Tuple

from torch import nn

__all__ = ['FullResolutionBody', 'ShapeContract', 'as_stride_tuples', 'contract_of',
           'expected_sizes', 'fill_auto_channels', 'resolve_auto_channels',
           'wants_auto_channels']

StrideTuples = Tuple[Tuple[int, ...], ...]


def as_stride_tuples(strides: Sequence[Any], spatial_dims: int) -> StrideTuples:
    """Normalise strides given as ints (isotropic) or per-axis sequences to per-axis tuples."""
    out = []
    for s in strides:
        if isinstance(s, int) and not isinstance(s, bool):
            out.append((s,) * spatial_dims)
        else:
            t = tuple(int(v) for v in s)
            if len(t) != spatial_dims:
                raise ValueError(f'strides: {s!r} has {len(t)} axes, expected one int or '
                                 f'{spatial_dims} per-axis ints')
            out.append(t)
    return tuple(out)


class ShapeContract:
    """Mixin: ``feature_info()`` from a class's ``out_channels`` and ``out_strides``."""

    def feature_info(self) -> List[Dict[str, Any]]:
        """One dict per returned level: ``num_chs``, ``reduction`` (max axis stride),
        ``stride`` (per axis) and ``index`` (position in the returned tuple)."""
        return [dict(num_chs=int(c), reduction=max(s), stride=tuple(s), index=i)
                for i, (c, s) in enumerate(zip(self.out_channels, self.out_strides))]


def contract_of(backbone: nn.Module) -> Tuple[Tuple[int, ...], StrideTuples]:
    """``(out_channels, out_strides)`` of a backbone, as tuples; ``TypeError`` when the module
    does not follow the contract."""
    missing = [a for a in ('out_channels', 'out_strides') if not hasattr(backbone, a)]
    if missing:
        raise TypeError(f'{type(backbone).__name__} does not follow the densekit shape contract: '
                        f'missing {missing} (see densekit.backbones.contract)')
    channels = tuple(int(c) for c in backbone.out_channels)
    strides = tuple(tuple(int(v) for v in s) for s in backbone.out_strides)
    if len(channels) != len(strides):
        raise TypeError(f'{type(backbone).__name__}: out_channels has {len(channels)} entries '
                        f'but out_strides has {len(strides)}')
    return channels, strides


def expected_sizes(backbone: nn.Module, input_size: Sequence[int]
                   ) -> List[Tuple[Tuple[int, int], ...]]:
    """Per level and axis the ``(floor, ceil)`` of ``size / stride`` a feature may have."""
    _, strides = contract_of(backbone)
    return [tuple((n // s, -(-n // s)) for n, s in zip(input_size, stride))
            for stride in strides]


def resolve_auto_channels(cfg: Dict[str, Any], channels: Sequence[int],
                          key: str = 'in_channels') -> Dict[str, Any]:
    """Return ``cfg`` with ``cfg[key] == 'auto'`` replaced by ``channels`` (a list, or the
    single int for a one-level input). Other values are left as they are."""
    if cfg is None or cfg.get(key) != 'auto':
        return cfg
    cfg = copy.copy(cfg)
    channels = [int(c) for c in channels]
    cfg[key] = channels if len(channels) != 1 else channels[0]
    return cfg


#: model-config keys whose ``in_channels`` may be ``'auto'`` (filled from what feeds them)
AUTO_KEYS_NECK = ('neck',)
AUTO_KEYS_HEAD = ('decode_head', 'auxiliary_head', 'bbox_head', 'rpn_head', 'head')
PROBE_SIZE = 64


def wants_auto_channels(cfg: Any) -> bool:
    """Whether a model config has a neck or head with ``in_channels='auto'`` to fill.

    Raises:
        ValueError: ``'auto'`` is asked for but the config has no ``backbone`` dict to fill
            it from (the part would otherwise fail deep inside its constructor).
    """
    if not isinstance(cfg, dict):
        return False
    parts = [(k, cfg.get(k)) for k in AUTO_KEYS_NECK + AUTO_KEYS_HEAD]
    auto = [k for k, part in parts
            for p in (part if isinstance(part, list) else [part])
            if isinstance(p, dict) and p.get('in_channels') == 'auto']
    if auto and not isinstance(cfg.get('backbone'), dict):
        raise ValueError(f"{auto[0]}: in_channels='auto' needs a backbone config to fill it "
                         f"from, but the model config has backbone={cfg.get('backbone')!r}")
    return bool(auto)


def _with(cfg: Dict[str, Any], **updates: Any) -> Dict[str, Any]:
    """A shallow copy of ``cfg`` (of the same type, e.g. a ConfigDict) with ``updates``."""
    out = copy.copy(cfg)
    out.update(updates)
    return out


def _channels_of(features: Any) -> List[int]:
    feats = features if isinstance(features, (list, tuple)) else [features]
    return [int(f.shape[1]) for f in feats]


def _default_in_index(head: Dict[str, Any], registry: Any) -> Any:
    """The ``in_index`` default of the head's class (mmseg's decode heads have one, ``-1``),
    or None for heads that take every level."""
    cls = registry.get(head.get('type')) if isinstance(head.get('type'), str) else None
    for klass in getattr(cls, '__mro__', ()):
        init = vars(klass).get('__init__')
        if init is None:
            continue
        param = inspect.signature(init).parameters.get('in_index')
        if param is not None and param.default is not inspect.Parameter.empty:
            return param.default
    return None


def _head_channels(key: str, head: Dict[str, Any], channels: List[int], registry: Any) -> Any:
    """What a head's ``in_channels`` must be for input levels with ``channels``: heads with an
    ``in_index`` (mmseg's) select levels; detection heads (``bbox_head``, ``rpn_head``) take
    the one int all levels share; other heads (U-Net decoders) take every level's channels,
    and a single level (a restoration body) gives one int."""
    index = head['in_index'] if 'in_index' in head else _default_in_index(head, registry)
    if index is not None:
        picks = list(index) if isinstance(index, (list, tuple)) else [index]
        n = len(channels)
        bad = [i for i in picks if not isinstance(i, int) or not -n <= i < n]
        if bad:
            raise ValueError(f"{key}: in_channels='auto' with in_index={index!r}, but what feeds "
                             f'it returns {len(channels)} levels (channels {channels})')
        return [channels[i] for i in picks] if isinstance(index, (list, tuple)) \
            else channels[index]
    if len(channels) == 1 or (key in ('bbox_head', 'rpn_head') and len(set(channels)) == 1):
        return channels[0]
    return list(channels)


def fill_auto_channels(cfg: Dict[str, Any], registry: Any) -> Dict[str, Any]:
    """Return a copy of a model config with every ``in_channels='auto'`` filled in.

    The backbone is built (without weights initialisation) and told to describe itself: its
    ``out_channels`` when it follows the contract, otherwise the channels of a forward pass on
    a ``64``-pixel probe input. A neck with ``'auto'`` gets the backbone's channels; heads get
    the channels of what feeds them (the neck when there is one, probed the same way).
    The torch random state is left as it was, so the model is initialised exactly as from the
    hand-typed config. Used by densekit's registry build, so any wrapper (``mmseg.EncoderDecoder``,
    ``mmdet.RetinaNet``, densekit's own) accepts ``'auto'``.
    """
    import torch

    # the probe parts must not consume the random state the real model is initialised from
    with torch.random.fork_rng(devices=[]):
        return _fill_auto_channels(cfg, registry)


def _fill_auto_channels(cfg: Dict[str, Any], registry: Any) -> Dict[str, Any]:
    import torch

    cfg = copy.copy(cfg)
    backbone_cfg = copy.copy(cfg['backbone'])
    backbone = registry.build(backbone_cfg)
    spatial_dims = int(getattr(backbone, 'spatial_dims', backbone_cfg.get('spatial_dims', 2)))
    in_channels = backbone_cfg.get('in_channels', 3)
    probe = torch.zeros(1, int(in_channels) if isinstance(in_channels, int) else 3,
                        *(PROBE_SIZE,) * spatial_dims)
    backbone.eval()
    with torch.no_grad():
        if hasattr(backbone, 'out_channels') and hasattr(backbone, 'out_strides'):
            channels, feats = [int(c) for c in backbone.out_channels], None
        else:
            feats = backbone(probe)
            channels = _channels_of(feats)
        neck_cfg = cfg.get('neck')
        necks = neck_cfg if isinstance(neck_cfg, list) else [neck_cfg]
        heads_auto = any(
            isinstance(h, dict) and h.get('in_channels') == 'auto'
            for k in AUTO_KEYS_HEAD
            for h in (cfg.get(k) if isinstance(cfg.get(k), list) else [cfg.get(k)]))
        filled_necks = []
        for i, neck in enumerate(necks):
            if not isinstance(neck, dict):
                filled_necks.append(neck)
                continue
            neck = resolve_auto_channels(neck, channels)
            filled_necks.append(neck)
            later_auto = any(isinstance(n, dict) and n.get('in_channels') == 'auto'
                             for n in necks[i + 1:])
            if heads_auto or later_auto:
                if feats is None:
                    feats = backbone(probe)
                feats = registry.build(copy.copy(neck)).eval()(feats)
                channels = _channels_of(feats)
        if neck_cfg is not None:
            cfg['neck'] = filled_necks if isinstance(neck_cfg, list) else filled_necks[0]
    for key in AUTO_KEYS_HEAD:
        head = cfg.get(key)
        heads = head if isinstance(head, list) else [head]
        filled = [_with(h, in_channels=_head_channels(key, h, channels, registry))
                  if isinstance(h, dict) and h.get('in_channels') == 'auto' else h for h in heads]
        if head is not None:
            cfg[key] = filled if isinstance(head, list) else filled[0]
    return cfg


class FullResolutionBody(ShapeContract):
    """Mixin for restoration bodies: one feature map at the input resolution (``out_strides``
    ``((1, 1),)``); the body sets ``out_channels`` to a one-entry tuple."""

    out_strides: StrideTuples = ((1, 1),)
