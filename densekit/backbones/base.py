"""A shared base for stage-based (pyramid) backbones, 2D (NCHW) or 3D (NCDHW).

Most modern ConvNets are a stem followed by a few stages, each stage halving the resolution
and widening the features. :class:`PyramidBackbone` owns everything around that layout so the
subclasses only build their layers:

* the ``arch`` look-up: a key of the class table ``arch_settings`` or a dict giving the
  per-stage ``depths`` and ``widths`` (plus the extra keys a subclass declares in
  ``arch_defaults``);
* validation of ``in_channels``, ``out_indices``, ``spatial_dims``, ``frozen_stages`` and
  ``norm_eval`` (``ValueError`` naming the argument, the value and what was expected);
* the shape contract: ``out_channels`` and ``strides`` of the selected levels, so a neck can be
  configured from them (``FPN(in_channels=backbone.out_channels, ...)``);
* ``forward``: input check, stem, stages, optional per-output norm, tuple of selected levels;
* freezing of the first stages and BatchNorm ``norm_eval``.

A subclass calls ``super().__init__(...)`` first, then builds ``self.stem`` (input -> stride
``stem_stride``) and ``self.stages`` (an ``nn.ModuleList``; stage ``i > 0`` starts with its own
downsampling), optionally calls :meth:`add_out_norms`, and finally :meth:`freeze_stages`.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from densekit.backbones.contract import ShapeContract, as_stride_tuples
from densekit.errors import positive_int, positive_ints
from densekit.layers import ConvNormAct, LayerFactory, check_spatial_dims

__all__ = ['PyramidBackbone']

ArchSpec = Union[str, Dict[str, Any]]


class PyramidBackbone(ShapeContract, BaseModule):
    """Stem + stages backbone returning a tuple of pyramid levels.

    Level ``i`` is the output of ``stages[i]``; its nominal stride is
    ``stem_stride * 2 ** i`` unless a subclass overrides :meth:`stage_strides`. With input sizes
    that are not multiples of the stride, each downsampling floors the size (as a strided conv
    does), so level ``i`` of a ``97 x 131`` image at stride 4 is ``24 x 32``.

    Args:
        arch: A key of ``arch_settings`` (case-insensitive) or a dict with ``depths`` and
            ``widths`` (one int per stage) and optionally the keys of ``arch_defaults``.
        in_channels: Channels of the input image or volume.
        out_indices: Stages whose outputs are returned (negative indices count from the end).
        spatial_dims: 2 for NCHW images, 3 for NCDHW volumes.
        frozen_stages: ``-1`` trains everything; ``k >= 0`` freezes the stem and the first
            ``k`` stages (parameters without gradient, BatchNorm in eval mode).
        norm_eval: Keep every BatchNorm in eval mode while training (frozen statistics).
        init_cfg: mmengine initialisation config.

    Raises:
        ValueError: an unknown ``arch`` key (the valid ones are listed), a malformed arch dict,
            or a bad ``in_channels`` / ``out_indices`` / ``spatial_dims`` / ``frozen_stages``.
    """

    #: arch name -> dict(depths=[...], widths=[...], **extra keys)
    arch_settings: ClassVar[Dict[str, Dict[str, Any]]] = {}
    #: extra arch keys a subclass accepts, with their defaults
    arch_defaults: ClassVar[Dict[str, Any]] = {}
    #: stride of the stem (level 0)
    stem_stride: ClassVar[int] = 4
    # module types with their own ``switch_to_deploy()`` (re-parameterisable units)
    deploy_units: ClassVar[Tuple[type, ...]] = ()

    def __init__(self, arch: ArchSpec, *, in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3), spatial_dims: int = 2,
                 frozen_stages: int = -1, norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.factory = LayerFactory(self.spatial_dims)
        self.arch = self.resolve_arch(arch)
        self.depths: List[int] = self.arch['depths']
        self.widths: List[int] = self.arch['widths']
        self.num_stages = len(self.depths)
        positive_int(in_channels, 'in_channels')
        self.in_channels = in_channels
        self.out_indices = self._check_out_indices(out_indices)
        if (not isinstance(frozen_stages, int) or isinstance(frozen_stages, bool)
                or not -1 <= frozen_stages <= self.num_stages):
            raise ValueError(f'frozen_stages must be an int in [-1, {self.num_stages}] (-1 = '
                             f'train everything), got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        if not isinstance(norm_eval, bool):
            raise ValueError(f'norm_eval must be a bool, got {norm_eval!r}')
        self.norm_eval = norm_eval
        self.out_norms: Optional[nn.ModuleDict] = None

    # -- arch and argument checks --------------------------------------------------------------
    @classmethod
    def resolve_arch(cls, arch: ArchSpec) -> Dict[str, Any]:
        """Return the full arch dict (``depths``, ``widths`` and every ``arch_defaults`` key)."""
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_settings:
                raise ValueError(f'arch={arch!r} is not a known {cls.__name__} arch; expected '
                                 f'one of {sorted(cls.arch_settings)} or a dict with depths '
                                 f'and widths')
            spec = dict(cls.arch_settings[key])
        elif isinstance(arch, dict):
            spec = dict(arch)
        else:
            raise ValueError(f'arch must be a str (one of {sorted(cls.arch_settings)}) or a dict '
                             f'with depths and widths, got {arch!r}')
        missing = [k for k in ('depths', 'widths') if k not in spec]
        unknown = sorted(set(spec) - {'depths', 'widths'} - set(cls.arch_defaults))
        if missing or unknown:
            raise ValueError(f'arch={arch!r}: missing keys {missing}, unknown keys {unknown}; '
                             f'expected depths, widths and optionally '
                             f'{sorted(cls.arch_defaults)}')
        spec['depths'] = positive_ints(spec['depths'], 'arch depths')
        spec['widths'] = positive_ints(spec['widths'], 'arch widths')
        if len(spec['depths']) != len(spec['widths']):
            raise ValueError(f'arch={arch!r}: depths and widths must have one entry per stage, '
                             f'got {len(spec["depths"])} and {len(spec["widths"])}')
        for key, default in cls.arch_defaults.items():
            spec.setdefault(key, default)
        return spec

    def _check_out_indices(self, out_indices: Any) -> Tuple[int, ...]:
        n = self.num_stages
        if isinstance(out_indices, int) and not isinstance(out_indices, bool):
            out_indices = (out_indices,)
        if (not isinstance(out_indices, (list, tuple)) or not out_indices
                or any(not isinstance(i, int) or isinstance(i, bool) or not -n <= i < n
                       for i in out_indices)):
            raise ValueError(f'out_indices must be a non-empty sequence of stage indices in '
                             f'[{-n}, {n - 1}] ({n} stages), got {out_indices!r}')
        normalized = tuple(i % n for i in out_indices)
        if len(set(normalized)) != len(normalized):
            raise ValueError(f'out_indices={tuple(out_indices)!r} selects a stage twice')
        return normalized

    # -- shape contract ------------------------------------------------------------------------
    def stage_strides(self) -> List[int]:
        """Nominal stride of every stage output (``stem_stride * 2 ** i`` by default)."""
        return [self.stem_stride * 2 ** i for i in range(self.num_stages)]

    def stage_channels(self) -> List[int]:
        """Channels of every stage output (the arch widths by default)."""
        return list(self.widths)

    @property
    def out_channels(self) -> List[int]:
        """Channels of the returned levels, in ``out_indices`` order."""
        channels = self.stage_channels()
        return [channels[i] for i in self.out_indices]

    @property
    def strides(self) -> List[int]:
        """Nominal strides of the returned levels, in ``out_indices`` order."""
        strides = self.stage_strides()
        return [strides[i] for i in self.out_indices]

    @property
    def out_strides(self) -> Tuple[Tuple[int, ...], ...]:
        """Per-axis strides of the returned levels (the shape contract of
        :mod:`densekit.backbones.contract`)."""
        return as_stride_tuples(self.strides, self.spatial_dims)

    @property
    def total_stride(self) -> Tuple[int, ...]:
        """Per-axis stride of the deepest returned level: inputs whose sizes are multiples of
        it give every level an exact ``size / stride`` shape."""
        return (max(self.strides),) * self.spatial_dims

    # -- helpers for subclasses -----------------------------------------------------------------
    @staticmethod
    def build_stage(downsample: Optional[nn.Module], blocks: Sequence[nn.Module]) -> nn.Sequential:
        """A stage: an optional ``downsample`` module, then ``blocks`` (state-dict names
        ``downsample.*`` and ``blocks.<j>.*``)."""
        parts: Dict[str, nn.Module] = {}
        if downsample is not None:
            parts['downsample'] = downsample
        parts['blocks'] = nn.Sequential(*blocks)
        return nn.Sequential(OrderedDict(parts))

    def add_out_norms(self, make_norm: Callable[[int], nn.Module]) -> None:
        """Add one norm per returned level, built by ``make_norm(channels)``."""
        channels = self.stage_channels()
        self.out_norms = nn.ModuleDict(
            {str(i): make_norm(channels[i]) for i in self.out_indices})

    def drop_path_rates(self, drop_path_rate: float) -> List[List[float]]:
        """Stochastic-depth rates rising linearly from 0 to ``drop_path_rate`` over all blocks,
        grouped per stage."""
        if not isinstance(drop_path_rate, (int, float)) or not 0 <= drop_path_rate < 1:
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate!r}')
        total = sum(self.depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        out, start = [], 0
        for depth in self.depths:
            out.append(rates[start:start + depth])
            start += depth
        return out

    @torch.no_grad()
    def switch_to_deploy(self) -> PyramidBackbone:
        """Re-parameterise every ``deploy_units`` module and fold every BatchNorm of a
        :class:`~densekit.layers.ConvNormAct` into its conv (in place, eval mode); returns self."""
        self.eval()
        for module in self.modules():
            if isinstance(module, self.deploy_units):
                module.switch_to_deploy()
            elif isinstance(module, ConvNormAct):
                module.fuse()
        return self

    reparameterize = switch_to_deploy

    def freeze_stages(self) -> None:
        """Freeze the stem and the first ``frozen_stages`` stages (and their output norms)."""
        if self.frozen_stages < 0:
            return
        frozen: List[nn.Module] = [self.stem]
        frozen += [self.stages[i] for i in range(self.frozen_stages)]
        if self.out_norms is not None:
            frozen += [self.out_norms[str(i)] for i in range(self.frozen_stages)
                       if str(i) in self.out_norms]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> PyramidBackbone:
        """Set train mode, keeping frozen stages (and every BatchNorm under ``norm_eval``) in
        eval mode."""
        super().train(mode)
        if mode:
            self.freeze_stages()
            if self.norm_eval:
                for module in self.modules():
                    if isinstance(module, _BatchNorm):
                        module.eval()
        return self

    # -- forward -------------------------------------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is an N x in_channels x spatial tensor large
        enough for the deepest returned level."""
        layout = 'NCHW' if self.spatial_dims == 2 else 'NCDHW'
        if not isinstance(x, Tensor) or x.dim() != self.spatial_dims + 2:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f'{type(self).__name__} expects a {self.spatial_dims + 2}D '
                             f'{layout} tensor (spatial_dims={self.spatial_dims}), got {got}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__} was built with in_channels='
                             f'{self.in_channels} but the input has {x.shape[1]} channels')
        deepest = max(self.strides)
        if min(x.shape[2:]) < deepest:
            raise ValueError(f'{type(self).__name__}: input size {tuple(x.shape[2:])} is '
                             f'smaller than the deepest returned stride {deepest}')

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Return the selected levels, in ``out_indices`` order.

        Example (ConvNeXt-atto, 2D): ``(1, 3, 64, 64)`` ->
        ``[(1, 40, 16, 16), (1, 80, 8, 8), (1, 160, 4, 4), (1, 320, 2, 2)]``.
        """
        self.check_input(x)
        wanted = set(self.out_indices)
        last = max(wanted)
        levels: Dict[int, Tensor] = {}
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in wanted:
                levels[i] = x if self.out_norms is None else self.out_norms[str(i)](x)
            if i == last:
                break
        return tuple(levels[i] for i in self.out_indices)
