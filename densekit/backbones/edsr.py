"""EDSR / MDSR body (Lim et al., 2017): residual blocks without normalisation.

Baseline: 16 blocks, 64 channels, ``res_scale=1``; large: 32 blocks, 256 channels,
``res_scale=0.1``. The head is :class:`~densekit.heads.reconstruction.PixelShuffleHead`. The
DIV2K mean shift lives in the data preprocessor (``mean=DIV2K_MEAN``). MDSR shares the body
across scales and adds scale-specific pre-processing (two 5x5 residual blocks per scale) here and
scale-specific upsamplers in the head (``scales=(2, 3, 4)`` on both).
"""
from __future__ import annotations

from typing import Optional, Sequence

from torch import Tensor, nn

from densekit.backbones.contract import FullResolutionBody
from densekit.blocks.edsr_block import EDSRResBlock
from densekit.errors import positive_int
from densekit.heads.reconstruction import check_scale
from densekit.layers import LayerFactory
from densekit.registry import MODELS

__all__ = ['EDSRBody']

_LAYERS = LayerFactory(2)


@MODELS.register_module()
class EDSRBody(FullResolutionBody, nn.Module):
    """EDSR feature extractor: conv, residual blocks, conv, long skip.

    Args:
        in_channels: Image channels.
        channels: Feature channels (64 baseline, 256 large).
        num_blocks: Residual blocks (16 baseline, 32 large).
        res_scale: Residual scaling (1 baseline, 0.1 large).
        scales: MDSR: scales that get their own pre-processing blocks (then ``forward`` takes
            ``scale=``). ``None`` for single-scale EDSR.
        block_cfg: Config of the residual blocks instead of EDSR's conv-ReLU-conv, built with
            ``channels`` and ``res_scale`` filled in, e.g.
            ``dict(type='densekit.LargeKernelResBlock', kernel_size=13)``.

    Shape:
        ``(N, in, H, W)`` -> ``(N, channels, H, W)``; e.g. (2, 3, 48, 48) -> (2, 64, 48, 48).
    """

    def __init__(self, in_channels: int = 3, channels: int = 64, num_blocks: int = 16,
                 res_scale: float = 1.0, scales: Optional[Sequence[int]] = None,
                 block_cfg: Optional[dict] = None) -> None:
        super().__init__()
        positive_int(in_channels, 'in_channels')
        positive_int(channels, 'channels')
        positive_int(num_blocks, 'num_blocks')
        if not 0 < res_scale <= 1:
            raise ValueError(f'res_scale must be in (0, 1], got {res_scale!r}')
        self.multi_scale = scales is not None
        self.conv_first = _LAYERS.conv(in_channels, channels, 3, padding=1)
        if self.multi_scale:
            scales = tuple(check_scale(s, name='scales item') for s in scales)
            if not scales:
                raise ValueError('scales must not be empty')
            self.scales = scales
            self.pre = nn.ModuleDict({
                str(s): nn.Sequential(EDSRResBlock(channels, 1.0, 5),
                                    EDSRResBlock(channels, 1.0, 5))
                for s in scales})
        if block_cfg is not None and not isinstance(block_cfg, dict):
            raise TypeError(f'block_cfg must be a config dict or None, got {block_cfg!r}')

        def block() -> nn.Module:
            if block_cfg is None:
                return EDSRResBlock(channels, res_scale)
            return MODELS.build(dict(block_cfg, channels=channels, res_scale=res_scale))

        self.blocks = nn.Sequential(*[block() for _ in range(num_blocks)])
        self.conv_body = _LAYERS.conv(channels, channels, 3, padding=1)
        self.out_channels = (channels,)

    def forward(self, x: Tensor, scale: Optional[int] = None) -> Tensor:  # noqa: D102
        feat = self.conv_first(x)
        if self.multi_scale:
            scale = self.scales[0] if scale is None else scale
            if scale not in self.scales:
                raise ValueError(f'this MDSR body has scales {self.scales}, got {scale!r}')
            feat = self.pre[str(scale)](feat)
        return feat + self.conv_body(self.blocks(feat))
