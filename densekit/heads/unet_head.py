"""U-Net decoder head with deep supervision, dimension-generic: the decoder of the medical
residual, reversible and D-Former U-Nets (:mod:`densekit.backbones.unet_encoder`).
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Union

from mmengine.model import BaseModule
from torch import Tensor, nn

from densekit.blocks.residual import (
    DEFAULT_ACT,
    DEFAULT_NORM,
    ConvNormResBlock,
    UpConcat,
    per_stage,
    positive_int_list,
    run_blocks,
)
from densekit.layers import LayerFactory, check_spatial_dims
from densekit.registry import MODELS

__all__ = ['UNetDecoderHead']

@MODELS.register_module()
class UNetDecoderHead(BaseModule):
    """U-Net decoder with a 1x1 segmentation head per level (deep supervision).

    Args:
        in_channels: Channels of each input level, finest first (the encoder's widths, or the
            neck's outputs, e.g. ``[32] * 4`` after an FPN).
        num_classes: Output classes (including background).
        depths: Residual blocks per decoder level (finest first; default 1 each).
        spatial_dims: 3 or 2.
        norm_cfg: Norm spec.
        act_cfg: Activation spec.
        deep_supervision: Return the logits of every decoder level while training.
        with_cp: Activation checkpointing of every block while training.
        init_cfg: mmengine init config.
        kernel_sizes: Conv kernel of each decoder level, finest first (int or per-axis tuple
            each; default 3); the encoder's kernels of the same levels, as ``densekit plan``
            writes them.

    Example:
        >>> head = UNetDecoderHead([8, 16, 32], num_classes=3)
        >>> feats = [torch.rand(1, c, 16 // 2**i, 16 // 2**i, 8 // 2**i)
        ...          for i, c in enumerate([8, 16, 32])]
        >>> [tuple(o.shape) for o in head(feats, all_scales=True)]
        [(1, 3, 16, 16, 8), (1, 3, 8, 8, 4)]
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, in_channels: Sequence[int], num_classes: int,
                 depths: Optional[Sequence[int]] = None, spatial_dims: int = 3,
                 norm_cfg: Any = DEFAULT_NORM, act_cfg: Any = DEFAULT_ACT,
                 deep_supervision: bool = True, with_cp: bool = False,
                 init_cfg: Any = None, kernel_sizes: Any = 3) -> None:
        super().__init__(init_cfg=init_cfg)
        self.spatial_dims = check_spatial_dims(spatial_dims)
        in_channels = positive_int_list(list(in_channels), 'in_channels')
        if len(in_channels) < 2:
            raise ValueError(f'in_channels needs >= 2 levels, got {in_channels!r}')
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f'num_classes must be an int >= 2 (background included), got '
                             f'{num_classes!r}')
        levels = len(in_channels) - 1
        depths = positive_int_list(list(depths) if depths is not None else [1] * levels, 'depths')
        if len(depths) != levels:
            raise ValueError(f'depths needs {levels} entries (one per decoder level), got '
                             f'{depths!r}')
        self.in_channels, self.num_classes = in_channels, num_classes
        self.deep_supervision, self.with_cp = deep_supervision, with_cp
        kernels = per_stage(kernel_sizes, levels, spatial_dims, 'kernel_sizes')
        factory = LayerFactory(spatial_dims)
        self.ups, self.blocks, self.seg_heads = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for level in range(levels):  # finest first
            # the coarse input is the level below's decoder output (or the bottom feature)
            skip, coarse = in_channels[level], in_channels[level + 1]
            self.ups.append(UpConcat(spatial_dims, coarse, skip))
            k = kernels[level]
            blocks = [ConvNormResBlock(spatial_dims, 2 * skip, skip, kernel_size=k,
                                       norm_cfg=norm_cfg, act_cfg=act_cfg)]
            blocks += [ConvNormResBlock(spatial_dims, skip, skip, kernel_size=k,
                                        norm_cfg=norm_cfg, act_cfg=act_cfg)
                       for _ in range(depths[level] - 1)]
            self.blocks.append(nn.Sequential(*blocks))
            self.seg_heads.append(factory.conv(skip, num_classes, 1))

    def forward(self, feats: Sequence[Tensor], all_scales: Optional[bool] = None
                ) -> Union[Tensor, List[Tensor]]:
        """Decode a pyramid (finest first).

        Args:
            feats: ``len(in_channels)`` maps ``(N, in_channels[i], *spatial_i)``.
            all_scales: Return the logits of every level (finest first) instead of the finest
                only; default: while training with deep supervision.

        Returns:
            ``(N, num_classes, *spatial_0)`` logits, or a list of them per level.
        """
        if not isinstance(feats, (list, tuple)) or len(feats) != len(self.in_channels):
            got = len(feats) if isinstance(feats, (list, tuple)) else type(feats).__name__
            raise ValueError(f'UNetDecoderHead expects {len(self.in_channels)} feature maps, '
                             f'got {got}')
        if all_scales is None:
            all_scales = self.training and self.deep_supervision
        x = feats[-1]
        outs: List[Tensor] = []
        cp = self.with_cp and self.training
        for level in range(len(self.ups) - 1, -1, -1):
            x = self.ups[level](x, feats[level])
            x = run_blocks(self.blocks[level], x, cp)
            if all_scales or level == 0:
                outs.append(self.seg_heads[level](x))
        outs.reverse()
        return outs if all_scales else outs[0]
