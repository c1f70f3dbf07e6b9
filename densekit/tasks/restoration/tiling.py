"""Tiled super-resolution and deraining: any image size in bounded memory.

The tiles are the windowed engine's cross-faded layout (:func:`~densekit.windowed.grid.
crossfade_layout`): tiles of at most ``tile`` pixels a side, evenly spread, each consecutive
pair sharing at least ``overlap`` pixels, cross-faded so that **tiled output equals
whole-image output** when ``overlap / 4`` covers the network's receptive-field radius (in input
pixels); otherwise seams are cross-faded.

The engine (:func:`~densekit.windowed.engine.stream_windows`) blends the tiles at the output
resolution and hands finished output rows to a ``sink`` (e.g. written into a uint8 array or
streamed to a file), so working memory is one band of output rows, not the image. The input may
stay in its stored integer dtype: ``prepare`` turns each tile into the float tensor ``fn``
takes, so only one tile exists as float at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional

import torch
from torch import Tensor

from densekit.errors import positive_int
from densekit.windowed.engine import stream_windows
from densekit.windowed.grid import Span, check_tiling, crossfade_layout, crossfade_weights
from densekit.windowed.grid import tile_spans as axis_tiles

__all__ = ['axis_tiles', 'axis_weights', 'TileGrid', 'tiled_restore', 'check_tiling']

#: Cross-fade weights of one span along one axis (the engine's :func:`crossfade_weights`).
axis_weights = crossfade_weights


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
                  progress: Optional[Callable[[int], object]] = None,
                  dtype: torch.dtype = torch.float32) -> Optional[Tensor]:
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
            CPU rows, top to bottom. Without a sink the whole output is returned.
        device: Where ``fn`` runs (default: the image's device).
        prepare: Applied to each tile (already on ``device``) before ``fn``, e.g.
            ``lambda t: t.float().div_(255)``; only one tile is converted at a time.
        progress: Called as ``progress(1)`` after each tile (e.g. a tqdm bar's ``update``).
        dtype: Dtype the tiles are blended in (float32; float64 for exact comparisons).

    Returns:
        The ``(N, C_out, sH, sW)`` CPU output of ``dtype``, or ``None`` when a sink is given.

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
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f'dtype must be a floating point torch.dtype, got {dtype!r}')
    batch, channels, height, width = image.shape
    roi, layout = crossfade_layout((height, width), tile, overlap, align, scale)
    chunks: List[Tensor] = []

    # the engine blends one (1, C, ...) input; the batch travels folded into the channels, so
    # fn still sees the whole (N, C, h, w) tile batch at once
    def predictor(windows: Tensor) -> Tensor:
        piece = windows.reshape(batch, channels, *windows.shape[-2:])
        if prepare is not None:
            piece = prepare(piece)
        out = fn(piece)
        expected = (piece.shape[-2] * scale, piece.shape[-1] * scale)
        if tuple(out.shape[-2:]) != expected:
            raise ValueError(f'fn returned {tuple(out.shape[-2:])} for a tile of '
                             f'{tuple(piece.shape[-2:])}; expected {expected} at scale {scale}')
        return out.reshape(1, -1, *expected)

    def emit(_: int, row: int, rows: Tensor) -> None:
        rows = rows.reshape(batch, -1, *rows.shape[-2:])
        if sink is not None:
            sink(row, rows)
        else:
            chunks.append(rows)

    folded = image.reshape(1, batch * channels, height, width)
    stream_windows(folded, roi, predictor, layout, emit, sw_device=device or image.device,
                   device='cpu', dtype=dtype, progress=progress or False)
    return None if sink is not None else torch.cat(chunks, dim=-2)
