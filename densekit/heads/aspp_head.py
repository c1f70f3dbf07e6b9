"""DeepLabv3 decode head on densekit's :class:`~densekit.necks.ASPP` (mmseg ``ASPPHead`` API).

A drop-in for mmseg's ``ASPPHead`` / ``DepthwiseSeparableASPPHead`` ASPP part: same arguments
(plus ``separable``), same forward result, and mmseg checkpoints load directly (keys are moved
under ``aspp.`` on load).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from mmengine.registry import DefaultScope
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor, nn

from densekit.heads.dims import SpatialHeadMixin
from densekit.necks.aspp import ASPP
from densekit.necks.convert import PeerCheckpointMixin
from densekit.registry import MODELS

__all__ = ['ASPPHead']


@MODELS.register_module()
class ASPPHead(PeerCheckpointMixin, SpatialHeadMixin, BaseDecodeHead):
    """Semantic-segmentation head: ASPP (image pool + rate branches + 3x3 bottleneck), then
    dropout and a 1x1 classifier.

    Args:
        dilations: ASPP rates, default ``(1, 6, 12, 18)``.
        separable: Depthwise-separable dilated branches (DeepLabv3+ style).
        spatial_dims: 2 (NCHW images) or 3 (NCDHW volumes; convs, pooling, dropout and
            resizing become 3D, bilinear becomes trilinear).
        **kwargs: mmseg ``BaseDecodeHead`` arguments: ``in_channels``, ``channels``,
            ``num_classes``, ``in_index``, ``dropout_ratio``, ``conv_cfg``, ``norm_cfg``,
            ``act_cfg``, ``align_corners``, ``loss_decode``, ``init_cfg``...

    Raises:
        ValueError: ``input_transform='multiple_select'`` (one map is needed), bad ASPP args,
            or ``spatial_dims`` not 2 or 3.

    Differences from mmseg's ``ASPPHead``: the ASPP layers live in ``self.aspp`` (an
    :class:`~densekit.necks.ASPP`); ``aspp_modules``, ``image_pool`` and ``bottleneck`` are
    read-only aliases of its parts (no extra state-dict keys). ``image_pool`` is the pooled
    branch's conv block itself (mmseg: ``Sequential(pool, ConvModule)``, so mmseg's
    ``image_pool[1]`` is densekit's ``image_pool``); the pooling is ``aspp.pool``. In 3D the
    forward is volumetric; ``loss`` / ``predict`` remain mmseg's 2D ``SegDataSample`` pipeline.

    Example:
        >>> import torch
        >>> head = ASPPHead(in_channels=16, channels=8, num_classes=3, dilations=(1, 2))
        >>> head([torch.rand(2, 16, 9, 11)]).shape
        torch.Size([2, 3, 9, 11])
    """

    peer_rules = 'mmseg.ASPPHead'

    def __init__(self, dilations: Sequence[Any] = (1, 6, 12, 18), separable: bool = False,
                 spatial_dims: int = 2, **kwargs: Any) -> None:
        spatial_dims = self._check_spatial_dims(spatial_dims)
        # BaseDecodeHead builds its losses / sampler by unscoped name from mmseg's registries;
        # pin the scope so that also works when this head is built from a densekit config.
        with DefaultScope.overwrite_default_scope('mmseg'):
            super().__init__(**kwargs)
        self._build_spatial(spatial_dims)
        if not isinstance(self.in_channels, int):
            raise ValueError(f'ASPPHead needs one input map: in_channels={self.in_channels!r} '
                             f"with input_transform={self.input_transform!r}; use None or "
                             f"'resize_concat'")
        self.dilations = dilations
        self.aspp = ASPP(self.in_channels, self.channels, dilations=dilations,
                         separable=separable, align_corners=self.align_corners,
                         conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg,
                         spatial_dims=spatial_dims)
        if self.aspp.image_pool is not None:
            # as in mmseg, whose pooled conv sits in a plain Sequential: init_weights() leaves it
            # to init_cfg instead of re-initialising it (the bottleneck is re-initialised in both)
            self.aspp.image_pool.is_init = True

    @property
    def aspp_modules(self) -> nn.ModuleList:
        """The rate branches (mmseg's ``aspp_modules``), alias of ``aspp.aspp_modules``."""
        return self.aspp.aspp_modules

    @property
    def image_pool(self) -> Optional[nn.Module]:
        """The pooled branch's conv block (mmseg's ``image_pool[1]``), or None."""
        return self.aspp.image_pool

    @property
    def bottleneck(self) -> nn.Module:
        """The projection of the concatenated branches (mmseg's ``bottleneck``)."""
        return self.aspp.bottleneck

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Segmentation logits ``(N, num_classes, *S)`` of the ``in_index`` map
        ``(N, in_channels, *S)`` (``S`` = ``(H, W)`` or ``(D, H, W)``), at its resolution."""
        x = self._transform_inputs(inputs)
        return self.cls_seg(self.aspp.forward_single(x))
