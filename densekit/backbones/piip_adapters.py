"""Staged access to existing backbones for the PIIP wrapper (:class:`densekit.PIIP`).

PIIP runs several backbones ("branches") side by side and lets them exchange information at
``K`` interaction points. To do that it needs to run each branch piece by piece, on a token
sequence it can read and modify between the pieces. An *adapter* gives that access without
touching the backbone's code or weights (the backbone stays a submodule, so its state-dict keys
are ``<adapter>.backbone.<original key>`` and its pretrained checkpoints still load into it).

Every adapter exposes:

* ``embed(x) -> (tokens, hw)``: image ``(B, 3, H, W)`` to tokens ``(B, P + h*w, C)``, where the
  first ``num_prefix_tokens`` (``P``) tokens are non-spatial (a ViT's cls token) and the rest
  are the row-major ``h x w`` token grid;
* ``run_stage(i, tokens, hw) -> (tokens, hw)`` and ``run_stages(start, end, tokens, hw)``;
* ``num_stages``, ``stage_widths`` (channels after each stage) and ``width`` (the last one);
* ``finalize(tokens, hw) -> (B, C, h, w)``: the branch's final feature map, exactly what the
  backbone on its own returns as its last output.

Adapters exist for mmseg's ``VisionTransformer`` (stages = transformer layers), ResNets from
mmdet/mmseg (stem in ``embed``, stages = residual layers; a CNN's grid and width change per
stage) and any backbone exposing ``stages`` (an ``nn.ModuleList`` of NCHW->NCHW modules, with an
optional ``stem``). Other families can be added with :func:`register_piip_adapter`.

Example:
    >>> vit = MODELS.build(dict(type='mmseg.VisionTransformer', img_size=64, embed_dims=32,
    ...                         num_layers=4, num_heads=4))
    >>> adapter = build_piip_adapter(vit)
    >>> tokens, hw = adapter.embed(torch.rand(2, 3, 64, 64))   # (2, 1 + 16, 32), (4, 4)
    >>> tokens, hw = adapter.run_stages(0, 4, tokens, hw)
    >>> adapter.finalize(tokens, hw).shape
    torch.Size([2, 32, 4, 4])
"""
from __future__ import annotations

from typing import Callable, List, Tuple, Type

import torch
from mmengine.model import BaseModule
from torch import nn

HW = Tuple[int, int]

_ADAPTERS: List[Tuple[Callable[[nn.Module], bool], Type[PIIPBranchAdapter]]] = []


def register_piip_adapter(predicate: Callable[[nn.Module], bool]) -> Callable:
    """Class decorator: use the decorated adapter for backbones where ``predicate`` is true.

    Adapters registered later are tried first, so a specific adapter can override a generic one.

    Args:
        predicate: ``fn(backbone) -> bool``.

    Returns:
        The decorator.
    """
    def wrap(cls: Type[PIIPBranchAdapter]) -> Type[PIIPBranchAdapter]:
        _ADAPTERS.insert(0, (predicate, cls))
        return cls
    return wrap


def build_piip_adapter(backbone: nn.Module) -> PIIPBranchAdapter:
    """Wrap ``backbone`` in the first registered adapter that accepts it.

    Args:
        backbone: A built backbone module.

    Returns:
        The adapter (an ``nn.Module`` holding ``backbone`` as ``.backbone``).

    Raises:
        TypeError: If no adapter supports the backbone's type.
    """
    for predicate, cls in _ADAPTERS:
        if predicate(backbone):
            return cls(backbone)
    raise TypeError(
        f'PIIP has no adapter for backbone type {type(backbone).__name__}; supported: mmseg '
        'VisionTransformer, mmdet/mmseg ResNet (res_layers), or a module exposing `stages` '
        '(nn.ModuleList of NCHW->NCHW modules, optional `stem`); add one with '
        'densekit.backbones.piip_adapters.register_piip_adapter')


def tokens_to_map(tokens: torch.Tensor, hw: HW) -> torch.Tensor:
    """``(B, h*w, C)`` tokens to a ``(B, C, h, w)`` map."""
    b, n, c = tokens.shape
    if n != hw[0] * hw[1]:
        raise ValueError(f'tokens has {n} tokens, expected h*w = {hw[0]}*{hw[1]}')
    return tokens.transpose(1, 2).reshape(b, c, hw[0], hw[1])


def map_to_tokens(x: torch.Tensor) -> Tuple[torch.Tensor, HW]:
    """``(B, C, h, w)`` map to ``(B, h*w, C)`` tokens and ``(h, w)``."""
    return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])


class PIIPBranchAdapter(BaseModule):
    """Base class: staged access to one backbone (see the module docstring).

    Args:
        backbone: The wrapped backbone; kept as the ``backbone`` submodule.
    """

    num_prefix_tokens: int = 0

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    @property
    def num_stages(self) -> int:
        """Number of stages interaction points can be placed between."""
        raise NotImplementedError

    @property
    def stage_widths(self) -> List[int]:
        """Channel count of the tokens after each stage."""
        raise NotImplementedError

    @property
    def width(self) -> int:
        """Channels of the final feature map."""
        return self.stage_widths[-1]

    def embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, HW]:
        """Image ``(B, 3, H, W)`` to tokens ``(B, P + h*w, C)`` and the grid ``(h, w)``."""
        raise NotImplementedError

    def run_stage(self, i: int, tokens: torch.Tensor, hw: HW) -> Tuple[torch.Tensor, HW]:
        """Run stage ``i`` on ``tokens``; returns the new tokens and grid."""
        raise NotImplementedError

    def run_stages(self, start: int, end: int, tokens: torch.Tensor,
                   hw: HW) -> Tuple[torch.Tensor, HW]:
        """Run stages ``start .. end - 1`` in order."""
        for i in range(start, end):
            tokens, hw = self.run_stage(i, tokens, hw)
        return tokens, hw

    def finalize(self, tokens: torch.Tensor, hw: HW) -> torch.Tensor:
        """Tokens after the last stage to the final ``(B, C, h, w)`` map."""
        return tokens_to_map(tokens[:, self.num_prefix_tokens:], hw)


def _is_mmseg_vit(backbone: nn.Module) -> bool:
    try:
        from mmseg.models.backbones import VisionTransformer
    except ImportError:  # pragma: no cover - mmseg is a hard dependency
        return False
    return isinstance(backbone, VisionTransformer)


@register_piip_adapter(_is_mmseg_vit)
class MMSegViTAdapter(PIIPBranchAdapter):
    """mmseg ``VisionTransformer``: patch embedding + (resized) position embedding, then layers.

    The position embedding is resized bicubically (the ViT's ``interpolate_mode``) to the
    branch's token grid, exactly as the ViT itself does, and the cls token (if the ViT keeps
    it) stays in front of the grid tokens while the layers run; interaction units only see the
    grid tokens. ``final_norm`` is applied in :meth:`finalize`.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__(backbone)
        self.num_prefix_tokens = 1 if backbone.with_cls_token else 0

    @property
    def num_stages(self) -> int:
        return len(self.backbone.layers)

    @property
    def stage_widths(self) -> List[int]:
        return [self.backbone.cls_token.shape[-1]] * self.num_stages

    def embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, HW]:
        vit = self.backbone
        tokens, hw = vit.patch_embed(x)
        grid = (vit.img_size[0] // vit.patch_size, vit.img_size[1] // vit.patch_size)
        pos = vit.pos_embed
        if tuple(hw) != grid:
            pos = vit.resize_pos_embed(pos, hw, grid, vit.interpolate_mode)
        if vit.with_cls_token:
            tokens = torch.cat((vit.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        else:
            pos = pos[:, 1:]
        tokens = vit.drop_after_pos(tokens + pos)
        if vit.pre_norm:
            tokens = vit.pre_ln(tokens)
        return tokens, (int(hw[0]), int(hw[1]))

    def run_stage(self, i: int, tokens: torch.Tensor, hw: HW) -> Tuple[torch.Tensor, HW]:
        return self.backbone.layers[i](tokens), hw

    def finalize(self, tokens: torch.Tensor, hw: HW) -> torch.Tensor:
        if self.backbone.final_norm:
            tokens = self.backbone.norm1(tokens)
        return tokens_to_map(tokens[:, self.num_prefix_tokens:], hw).contiguous()


class _MapStagesAdapter(PIIPBranchAdapter):
    """Shared code for CNN-like backbones whose stages map NCHW -> NCHW."""

    def _stage(self, i: int) -> nn.Module:
        raise NotImplementedError

    def run_stage(self, i: int, tokens: torch.Tensor, hw: HW) -> Tuple[torch.Tensor, HW]:
        return self.run_stages(i, i + 1, tokens, hw)

    def run_stages(self, start: int, end: int, tokens: torch.Tensor,
                   hw: HW) -> Tuple[torch.Tensor, HW]:
        x = tokens_to_map(tokens, hw)
        for i in range(start, end):
            x = self._stage(i)(x)
        return map_to_tokens(x)

    def finalize(self, tokens: torch.Tensor, hw: HW) -> torch.Tensor:
        return tokens_to_map(tokens, hw).contiguous()


def _is_resnet(backbone: nn.Module) -> bool:
    return (isinstance(getattr(backbone, 'res_layers', None), list)
            and hasattr(backbone, 'maxpool') and hasattr(backbone, 'deep_stem'))


@register_piip_adapter(_is_resnet)
class ResNetAdapter(_MapStagesAdapter):
    """mmdet / mmseg ``ResNet`` (and ResNetV1c/V1d): the stem runs in ``embed``, each residual
    layer is one stage, tokens are the flattened feature map at the stage's stride."""

    @property
    def num_stages(self) -> int:
        return len(self.backbone.res_layers)

    @property
    def stage_widths(self) -> List[int]:
        net = self.backbone
        return [net.block.expansion * net.base_channels * 2 ** i
                for i in range(self.num_stages)]

    def _stage(self, i: int) -> nn.Module:
        return getattr(self.backbone, self.backbone.res_layers[i])

    def embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, HW]:
        net = self.backbone
        if net.deep_stem:
            x = net.stem(x)
        else:
            x = net.relu(net.norm1(net.conv1(x)))
        return map_to_tokens(net.maxpool(x))


def _has_stages(backbone: nn.Module) -> bool:
    return isinstance(getattr(backbone, 'stages', None), nn.ModuleList)


@register_piip_adapter(_has_stages)
class StagesAdapter(_MapStagesAdapter):
    """Generic adapter for densekit backbones exposing ``stages`` (and optionally ``stem``).

    ``stages`` must be an ``nn.ModuleList`` of NCHW -> NCHW modules run in order; ``stem`` (if
    present) runs first. The stage widths come from a ``stage_channels`` or ``out_channels``
    attribute (a sequence with one entry per stage) or, failing that, from one dry run on a
    64x64 input in eval mode.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__(backbone)
        self._widths = self._infer_widths()

    def _infer_widths(self) -> List[int]:
        net = self.backbone
        for name in ('stage_channels', 'out_channels'):
            value = getattr(net, name, None)
            if isinstance(value, (list, tuple)) and len(value) == len(net.stages):
                return [int(v) for v in value]
        in_channels = int(getattr(net, 'in_channels', 3))
        was_training = net.training
        net.eval()
        widths = []
        with torch.no_grad():
            x = torch.zeros(1, in_channels, 64, 64)
            tokens, hw = self.embed(x)
            for i in range(len(net.stages)):
                tokens, hw = self.run_stage(i, tokens, hw)
                widths.append(tokens.shape[-1])
        net.train(was_training)
        return widths

    @property
    def num_stages(self) -> int:
        return len(self.backbone.stages)

    @property
    def stage_widths(self) -> List[int]:
        return list(self._widths)

    def _stage(self, i: int) -> nn.Module:
        return self.backbone.stages[i]

    def embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, HW]:
        stem = getattr(self.backbone, 'stem', None)
        if stem is not None:
            x = stem(x)
        return map_to_tokens(x)
