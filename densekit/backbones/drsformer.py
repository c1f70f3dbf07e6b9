"""DRSformer (Chen et al., CVPR 2023): sparse-transformer U-shape for image deraining.

3x3 embedding 3->C, an MEFC (:class:`~densekit.blocks.mefc.MEFC`), then a 4-level
encoder-decoder of :class:`~densekit.blocks.sparse_transformer.SparseBlock`
at widths C, 2C, 4C, 8C. Down = 3x3 conv to C/2 + PixelUnshuffle(2); up = 3x3 conv to 2C +
PixelShuffle(2). Decoder levels 3 and 2 concatenate the skip and reduce with a 1x1 conv; level 1
concatenates without reduction and runs at 2C, followed by optional refinement blocks and an
MEFC. The head (:class:`~densekit.heads.reconstruction.ReconstructionHead`) is a 3x3 conv to
RGB plus the input.
Paper: C=48, blocks (4, 6, 6, 8), heads (1, 2, 4, 8), FFN expansion 2.66, MEFC with 4 steps.
Inputs are padded to a multiple of 8 by the
:class:`~densekit.tasks.restoration.restorer.Restorer`.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from densekit.backbones.contract import FullResolutionBody
from densekit.blocks.mefc import EXPERTS, MEFC
from densekit.blocks.sparse_transformer import SparseBlock
from densekit.errors import positive_int
from densekit.layers import LayerFactory
from densekit.registry import MODELS

__all__ = ['DRSformer']

_LAYERS = LayerFactory(2)


def _stage(dim: int, depth: int, heads: int, expansion: float, bias: bool) -> nn.Sequential:
    return nn.Sequential(*[SparseBlock(dim, heads, expansion, bias) for _ in range(depth)])


@MODELS.register_module()
class DRSformer(FullResolutionBody, nn.Module):
    """DRSformer body (everything but the output conv).

    Args:
        in_channels: Image channels.
        dim: Width C of level 1 (48).
        num_blocks: Sparse blocks per level (4, 6, 6, 8); 0 is allowed.
        heads: Attention heads per level (1, 2, 4, 8).
        ffn_expansion: MSFN hidden ratio (2.66).
        num_refinement_blocks: Sparse blocks after the decoder (0 in DRSformer).
        mefc: Use the MEFC after the embedding and at refinement.
        mefc_steps: Routed steps of each MEFC (4).
        mefc_experts: Expert names.
        bias: Bias in convs.

    Shape:
        ``(N, in, H, W)`` with H, W multiples of 8 -> ``(N, 2C, H, W)``;
        e.g. dim=16: (1, 3, 64, 64) -> (1, 32, 64, 64).
    """

    size_divisor = 8

    def __init__(self, in_channels: int = 3, dim: int = 48,
                 num_blocks: Sequence[int] = (4, 6, 6, 8), heads: Sequence[int] = (1, 2, 4, 8),
                 ffn_expansion: float = 2.66, num_refinement_blocks: int = 0, mefc: bool = True,
                 mefc_steps: int = 4, mefc_experts: Sequence[str] = EXPERTS,
                 bias: bool = False) -> None:
        super().__init__()
        positive_int(in_channels, 'in_channels')
        positive_int(dim, 'dim')
        if len(num_blocks) != 4 or any(not isinstance(b, int) or b < 0 for b in num_blocks):
            raise ValueError(f'num_blocks must be 4 ints >= 0, got {num_blocks!r}')
        if len(heads) != 4 or any(not isinstance(h, int) or h < 1 for h in heads):
            raise ValueError(f'heads must be 4 positive ints, got {heads!r}')
        if dim % 2:
            raise ValueError(f'dim must be even (downsampling halves it), got {dim}')
        widths = [dim, dim * 2, dim * 4, dim * 8]
        for width, head in zip(widths, heads):
            if width % head:
                raise ValueError(f'heads {tuple(heads)} must divide the level widths {widths}')
        if dim * 2 % heads[0]:
            raise ValueError(f'heads[0]={heads[0]} must divide 2*dim={dim * 2}')
        e, b = ffn_expansion, bias
        self.embed = _LAYERS.conv(in_channels, dim, 3, padding=1, bias=bias)
        self.mefc_in = MEFC(dim, mefc_steps, mefc_experts) if mefc else nn.Identity()
        self.enc1 = _stage(widths[0], num_blocks[0], heads[0], e, b)
        self.enc2 = _stage(widths[1], num_blocks[1], heads[1], e, b)
        self.enc3 = _stage(widths[2], num_blocks[2], heads[2], e, b)
        self.latent = _stage(widths[3], num_blocks[3], heads[3], e, b)
        self.downs = nn.ModuleList(
            nn.Sequential(_LAYERS.conv(w, w // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))
            for w in widths[:3])
        self.ups = nn.ModuleList(
            nn.Sequential(_LAYERS.conv(w, w * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))
            for w in (widths[3], widths[2], widths[1]))
        self.reduce3 = _LAYERS.conv(widths[3], widths[2], 1, bias=bias)
        self.reduce2 = _LAYERS.conv(widths[2], widths[1], 1, bias=bias)
        self.dec3 = _stage(widths[2], num_blocks[2], heads[2], e, b)
        self.dec2 = _stage(widths[1], num_blocks[1], heads[1], e, b)
        self.dec1 = _stage(widths[1], num_blocks[0], heads[0], e, b)
        self.refine = _stage(widths[1], num_refinement_blocks, heads[0], e, b)
        self.mefc_out = MEFC(widths[1], mefc_steps, mefc_experts) if mefc else nn.Identity()
        self.out_channels = (widths[1],)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(f'DRSformer needs H and W divisible by 8, got {tuple(x.shape)}')
        e1 = self.enc1(self.mefc_in(self.embed(x)))
        e2 = self.enc2(self.downs[0](e1))
        e3 = self.enc3(self.downs[1](e2))
        latent = self.latent(self.downs[2](e3))
        d3 = self.dec3(self.reduce3(torch.cat([self.ups[0](latent), e3], dim=1)))
        d2 = self.dec2(self.reduce2(torch.cat([self.ups[1](d3), e2], dim=1)))
        d1 = self.dec1(torch.cat([self.ups[2](d2), e1], dim=1))
        return self.mefc_out(self.refine(d1))
