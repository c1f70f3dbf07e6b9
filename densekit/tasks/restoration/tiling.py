"""Tiled inference with overlap and blending: any image size in bounded memory.

The input is cut into overlapping tiles (at most ``tile`` pixels a side, evenly spread, each
consecutive pair sharing at least ``overlap`` pixels). Inside a shared band of width ``O`` each
tile's outer quarter (``O/4``) is discarded and the middle half is cross-faded linearly, so the
blend weights of neighbours sum to exactly 1 and every kept output pixel lies at least ``O/4``
input pixels from its tile's cut edge. Hence **tiled output equals whole-image output** when
``overlap / 4`` covers the network's receptive-field radius (in input pixels); otherwise seams
are cross-faded.

Tiles are processed one row of tiles at a time; finished output rows are handed to a ``sink``
(e.g. written into a uint8 array or streamed to a file), so working memory is one band of
output rows, not the image. The input may stay in its stored integer dtype: ``prepare`` turns
each tile into the float tensor ``fn`` takes, so only one tile exists as float at a time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor

from densekit.errors import positive_int

__all__ = ['axis_tiles', 'axis_weights', 'TileGrid', 'tiled_restore', 'check_tiling']

Span = Tuple[int, int]


def check_tiling(tile: int, overlap: int) -> None:
    """Validate tile and overlap sizes (``ValueError`` naming the bad argument)."""
    if not isinstance(tile, int) or isinstance(tile, bool) or tile < 8:
        raise ValueError(f'tile must be an int >= 8 pixels, got {tile!r}')
    if not isinstance(overlap, int) or isinstance(overlap, bool) or overlap < 0:
        raise ValueError(f'overlap must be an int >= 0 pixels, got {overlap!r}')
    if overlap * 3 > tile:
        raise ValueError(f'overlap={overlap} must be at most tile/3 (tile={tile}) so that only '
                         'neighbouring tiles overlap')


def axis_tiles(length: int, tile: int, overlap: int, align: int = 1) -> List[Span]:
    """Evenly spread ``(start, stop)`` spans covering ``[0, length)``.

    Spans are at most ``tile`` long (rounded up to a multiple of ``align`` where the length
    allows) and consecutive spans share at least ``overlap`` pixels.

    Example:
        >>> axis_tiles(1000, 512, 32)
        [(0, 355), (322, 677), (645, 1000)]
    """
    check_tiling(tile, overlap)
    if length <= tile:
        return [(0, length)]
    n = math.ceil((length - overlap) / (tile - overlap))
    size = min(length, math.ceil(math.ceil((length + (n - 1) * overlap) / n) / align) * align)
    while True:
        starts = [(i * (length - size)) // (n - 1) for i in range(n)]
        shared = min(starts[i] + size - starts[i + 1] for i in range(n - 1))
        if shared >= overlap or size >= length:
            return [(s, s + size) for s in starts]
        size += 1


def axis_weights(spans: List[Span], index: int, scale: int) -> Tensor:
    """Blend weights (float32, length ``scale * span``) of span ``index`` along one axis."""
    start, stop = spans[index]
    pos = (torch.arange(start * scale, stop * scale, dtype=torch.float64) + 0.5) / scale
    weight = torch.ones_like(pos)
    if index > 0:
        band = spans[index - 1][1] - start
        if band > 0:
            weight *= ((pos - start - band / 4) / (band / 2)).clamp(0, 1)
    if index + 1 < len(spans):
        band = stop - spans[index + 1][0]
        if band > 0:
            weight *= ((stop - pos - band / 4) / (band / 2)).clamp(0, 1)
    return weight.float()


@dataclass(frozen=True)
class TileGrid:
    """Tile spans of an ``H x W`` image (rows x columns)."""

    rows: List[Span]
    cols: List[Span]

    @classmethod
    def build(cls, height: int, width: int, tile: int, overlap: int, align: int = 1
              ) -> TileGrid:
        """Grid for an image of ``height x width`` input pixels."""
        return cls(axis_tiles(height, tile, overlap, align),
                   axis_tiles(width, tile, overlap, align))

    @property
    def num_tiles(self) -> int:
        """Number of tiles."""
        return len(self.rows) * len(self.cols)

    def processed_fraction(self) -> float:
        """Processed pixels / image pixels (1.0 = no overlap cost)."""
        h = sum(b - a for a, b in self.rows)
        w = sum(b - a for a, b in self.cols)
        return h * w / (self.rows[-1][1] * self.cols[-1][1])


Sink = Callable[[int, Tensor], None]


def tiled_restore(fn: Callable[[Tensor], Tensor], image: Tensor, scale: int = 1,
                  tile: int = 512, overlap: int = 32, align: int = 1,
                  sink: Optional[Sink] = None, device: Optional[torch.device] = None,
                  prepare: Optional[Callable[[Tensor], Tensor]] = None,
                  progress: Optional[Callable[[int], object]] = None) -> Optional[Tensor]:
    """Run ``fn`` over overlapping tiles of ``image`` and blend the outputs.

    Args:
        fn: Maps ``(N, C, h, w)`` to ``(N, C_out, scale*h, scale*w)`` (e.g. ``model.restore``).
        image: ``(N, C, H, W)`` input (stays where it is; tiles move to ``device``). Float,
            or any dtype that ``prepare`` converts (e.g. a uint8 view of the decoded image).
        scale: Output / input size.
        tile: Largest tile side in input pixels.
        overlap: Pixels shared by neighbouring tiles (see the module docstring).
        align: Round tile sides up to a multiple of this (the network's size divisor).
        sink: Called as ``sink(first_output_row, rows)`` with finished ``(N, C_out, r, sW)``
            float32 CPU rows, top to bottom. Without a sink the whole output is returned.
        device: Where ``fn`` runs (default: the image's device).
        prepare: Applied to each tile (already on ``device``) before ``fn``, e.g.
            ``lambda t: t.float().div_(255)``; only one tile is converted at a time.
        progress: Called as ``progress(1)`` after each tile (e.g. a tqdm bar's ``update``).

    Returns:
        The ``(N, C_out, sH, sW)`` float32 CPU output, or ``None`` when a sink is given.

    Example:
        >>> up = lambda t: t.repeat_interleave(2, -1).repeat_interleave(2, -2)
        >>> x = torch.rand(1, 3, 100, 90)
        >>> torch.allclose(tiled_restore(up, x, 2, tile=32, overlap=8), up(x))
        True
    """
    if image.dim() != 4:
        raise ValueError(f'image must be (N, C, H, W), got shape {tuple(image.shape)}')
    positive_int(scale, 'scale')
    if prepare is None and not image.is_floating_point():
        raise TypeError(f'image must be a float tensor when no prepare function converts its '
                        f'tiles, got dtype {image.dtype}')
    device = device or image.device
    height, width = image.shape[-2:]
    grid = TileGrid.build(height, width, tile, overlap, align)
    col_weights = [axis_weights(grid.cols, j, scale) for j in range(len(grid.cols))]
    chunks: List[Tensor] = []

    def emit(row: int, rows: Tensor) -> None:
        if sink is not None:
            sink(row, rows)
        else:
            chunks.append(rows)

    pending: Optional[Tensor] = None  # rows of the previous band still receiving contributions
    for r, (y0, y1) in enumerate(grid.rows):
        wy = axis_weights(grid.rows, r, scale)
        band = torch.zeros(0)
        for j, (x0, x1) in enumerate(grid.cols):
            piece = image[..., y0:y1, x0:x1].to(device)
            if prepare is not None:
                piece = prepare(piece)
            with torch.no_grad():
                out = fn(piece)
            del piece
            expected = ((y1 - y0) * scale, (x1 - x0) * scale)
            if tuple(out.shape[-2:]) != expected:
                raise ValueError(f'fn returned {tuple(out.shape[-2:])} for a tile of '
                                 f'{(y1 - y0, x1 - x0)}; expected {expected} at scale {scale}')
            if j == 0:
                band = torch.zeros(*out.shape[:2], expected[0], width * scale)
            band[..., x0 * scale:x1 * scale] += out.float().cpu() * (wy[:, None] * col_weights[j])
            del out
            if progress is not None:
                progress(1)
        if pending is not None:
            band[..., :pending.shape[-2], :] += pending
        next_y0 = grid.rows[r + 1][0] if r + 1 < len(grid.rows) else y1
        done = (next_y0 - y0) * scale
        # keep only the overlap rows (a copy), so the finished band can be freed once emitted
        pending = band[..., done:, :].clone() if done < band.shape[-2] else None
        emit(y0 * scale, band[..., :done, :])
        del band
    return None if sink is not None else torch.cat(chunks, dim=-2)
