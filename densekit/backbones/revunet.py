"""Reversible U-Net encoder: :class:`ResUNetEncoder` whose
stages are a strided residual block followed by reversible couplings
(:mod:`densekit.blocks.reversible`).
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from torch import nn

from densekit.backbones.unet_encoder import ResUNetEncoder
from densekit.blocks.residual import DEFAULT_ACT, DEFAULT_NORM, ConvNormResBlock
from densekit.blocks.reversible import ReversibleSequence, check_int
from densekit.registry import MODELS

__all__ = ['RevUNetEncoder']


@MODELS.register_module()
class RevUNetEncoder(ResUNetEncoder):
    """Residual U-Net encoder with reversible mobile-inverted-bottleneck stages.

    Stage ``i`` is a :class:`ConvNormResBlock` with the stage's stride (it changes the
    channels, which a reversible block cannot) followed by a :class:`ReversibleSequence` of
    ``depths[i]`` couplings. The arguments, presets and output pyramid are those of
    :class:`ResUNetEncoder`; ``depths`` counts couplings (each holds two bottlenecks).
    ``with_cp`` checkpoints the transition blocks only.

    Args:
        in_channels, arch, num_stages, widths, depths, strides, spatial_dims, norm_cfg,
            act_cfg, with_cp, init_cfg: As :class:`ResUNetEncoder` (widths even).
        expand_ratio: Bottleneck expansion (MobileNetV2: 6; default 4).
        kernel_size: Depthwise kernel (odd).
        reversible: False runs the same blocks with ordinary autograd (for comparisons).

    Example:
        >>> enc = RevUNetEncoder(1, arch='tiny')
        >>> [tuple(f.shape) for f in enc(torch.rand(1, 1, 16, 16, 16))]
        [(1, 8, 16, 16, 16), (1, 16, 8, 8, 8), (1, 32, 4, 4, 4), (1, 64, 2, 2, 2)]
    """

    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)

    def __init__(self, in_channels: int = 1, arch: str = 'small',
                 num_stages: Optional[int] = None, widths: Optional[Sequence[int]] = None,
                 depths: Optional[Sequence[int]] = None, strides: Any = 2,
                 spatial_dims: int = 3, norm_cfg: Any = DEFAULT_NORM, act_cfg: Any = DEFAULT_ACT,
                 with_cp: bool = False, expand_ratio: int = 4, kernel_size: int = 3,
                 reversible: bool = True, init_cfg: Any = None) -> None:
        check_int(expand_ratio, 'expand_ratio', 1)
        if check_int(kernel_size, 'kernel_size', 1) % 2 == 0:
            raise ValueError(f'kernel_size must be odd (same padding), got {kernel_size}')
        # read by _make_stage, which the parent's __init__ calls
        self._coupling_args = (expand_ratio, kernel_size, bool(reversible))
        super().__init__(in_channels, arch, num_stages=num_stages, widths=widths,
                         depths=depths, strides=strides, spatial_dims=spatial_dims,
                         norm_cfg=norm_cfg, act_cfg=act_cfg, with_cp=with_cp,
                         init_cfg=init_cfg)

    def _make_stage(self, in_channels: int, width: int, depth: int, stride: Tuple[int, ...],
                    norm_cfg: Any, act_cfg: Any) -> nn.Sequential:
        expand_ratio, kernel_size, reversible = self._coupling_args
        if width % 2:
            raise ValueError(f'RevUNetEncoder widths must be even (reversible couplings split '
                             f'the channels in halves), got {width} in {list(self.widths)}')
        transition = ConvNormResBlock(self.spatial_dims, in_channels, width, stride=stride,
                              norm_cfg=norm_cfg, act_cfg=act_cfg)
        couplings = ReversibleSequence(self.spatial_dims, width, depth, expand_ratio,
                                       kernel_size, norm_cfg, act_cfg, reversible=reversible)
        return nn.Sequential(transition, couplings)

    def reversible_sequences(self) -> List[ReversibleSequence]:
        """The reversible part of every stage."""
        return [m for m in self.modules() if isinstance(m, ReversibleSequence)]
