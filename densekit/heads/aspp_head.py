"""DeepLabv3 decode head on densekit's :class:`~densekit.necks.ASPP` (mmseg ``ASPPHead`` API).

A drop-in for mmseg's ``ASPPHead`` / ``DepthwiseSeparableASPPHead`` ASPP part: same arguments
(plus ``separable``), same forward result, and mmseg checkpoints load directly (keys are moved
under ``aspp.`` on load).
"""
from __future__ import annotations

from typing import Any, Sequence

from mmengine.registry import DefaultScope
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from densekit.necks.aspp import ASPP
from densekit.necks.convert import PeerCheckpointMixin
from densekit.registry import MODELS

__all__ = ['ASPPHead']


@MODELS.register_module()
class ASPPHead(PeerCheckpointMixin, BaseDecodeHead):
    """Semantic-segmentation head: ASPP (image pool + rate branches + 3x3 bottleneck), then
    dropout and a 1x1 classifier.

    Args:
        dilations: ASPP rates, default ``(1, 6, 12, 18)``.
        separable: Depthwise-separable dilated branches (DeepLabv3+ style).
        **kwargs: mmseg ``BaseDecodeHead`` arguments: ``in_channels``, ``channels``,
            ``num_classes``, ``in_index``, ``dropout_ratio``, ``conv_cfg``, ``norm_cfg``,
            ``act_cfg``, ``align_corners``, ``loss_decode``, ``init_cfg``...

    Raises:
        ValueError: ``input_transform='multiple_select'`` (one map is needed) or bad ASPP args.

    Example:
        >>> head = ASPPHead(in_channels=16, channels=8, num_classes=3, dilations=(1, 2))
        >>> head([torch.rand(2, 16, 9, 11)]).shape
        torch.Size([2, 3, 9, 11])
    """

    peer_rules = 'mmseg.ASPPHead'

    def __init__(self, dilations: Sequence[Any] = (1, 6, 12, 18), separable: bool = False,
                 **kwargs: Any) -> None:
        # BaseDecodeHead builds its losses / sampler by unscoped name from mmseg's registries;
        # pin the scope so that also works when this head is built from a densekit config.
        with DefaultScope.overwrite_default_scope('mmseg'):
            super().__init__(**kwargs)
        if not isinstance(self.in_channels, int):
            raise ValueError(f'ASPPHead needs one input map: in_channels={self.in_channels!r} '
                             f"with input_transform={self.input_transform!r}; use None or "
                             f"'resize_concat'")
        self.dilations = dilations
        self.aspp = ASPP(self.in_channels, self.channels, dilations=dilations,
                         separable=separable, align_corners=self.align_corners,
                         conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Segmentation logits ``(N, num_classes, H, W)`` of the ``in_index`` map
        ``(N, in_channels, H, W)``, at its resolution."""
        x = self._transform_inputs(inputs)
        return self.cls_seg(self.aspp.forward_single(x))
