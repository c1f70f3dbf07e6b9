"""``densekit infer`` for restoration configs (``task = 'sr'`` or ``'derain'``).

Each input is decoded with its bit depth, alpha and EXIF orientation (:mod:`.imageio`),
restored with :func:`~.tiling.tiled_restore` (tile and overlap from ``--tile`` / ``--overlap``,
else the config's ``infer_cfg``, else 512 and 16 input pixels) and written atomically next to
nothing it read: ``<stem>_x<scale>.png`` for SR, ``<stem>_derain.png`` for deraining (``.tif``
for TIFF inputs). The output has the input's bit depth and channels (gray, gray+alpha, RGB,
RGBA); SR upscales alpha with MATLAB bicubic, deraining passes it through.

Memory stays bounded for large inputs: the decoded uint8/uint16 image is kept as it is and only
the tile being processed is converted to float; ``predict`` returns a :class:`PendingRestoration`
whose tiles run inside ``write``, and the PNG output is streamed to its file by bands of rows
(:class:`~.imageio.PNGStreamWriter`) as the tiles finish them. TIFF outputs are assembled whole
in their integer dtype. With ``progress`` a bar counts the tiles of every image that has more
than one row of tiles.
"""
from __future__ import annotations

import os.path as osp
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
import torch
from tqdm import tqdm

from densekit.fileio import atomic_open, atomic_write_bytes
from densekit.imageio import split_image_array
from densekit.inference import IMAGE_SUFFIXES, Handler, InferOptions, register_handler
from densekit.tasks.restoration.imageio import (
    LoadedImage,
    PNGStreamWriter,
    encode_image,
    file_pixels,
    output_suffix,
    read_image,
)
from densekit.tasks.restoration.imresize import imresize_tensor
from densekit.tasks.restoration.tiling import TileGrid, check_tiling, tiled_restore

__all__ = ['restore_array', 'restore_rows', 'restoration_handler', 'PendingRestoration',
           'DEFAULT_TILE', 'DEFAULT_OVERLAP']

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 16

RowSink = Callable[[int, np.ndarray], None]


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 \
            or not (rgb.dtype in (np.uint8, np.uint16) or np.issubdtype(rgb.dtype, np.floating)):
        shape = getattr(rgb, 'shape', None)
        raise ValueError(f'rgb must be an (H, W, 3) uint8/uint16/float array, got {shape} '
                         f'{getattr(rgb, "dtype", type(rgb).__name__)}')


def _peak(dtype: np.dtype) -> float:
    """Largest pixel value of ``dtype``: 255, 65535, or 1 for float pixels in [0, 1]."""
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def restore_rows(model: torch.nn.Module, rgb: np.ndarray, sink: RowSink,
                 tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
                 progress: Optional[Callable[[int], object]] = None) -> None:
    """Restore ``rgb`` tile by tile and hand the finished output rows to ``sink``.

    ``rgb`` is ``(H, W, 3)`` uint8/uint16 and stays so: each tile is converted to float on its
    own. ``sink(first_row, rows)`` receives ``(r, sW, 3)`` arrays of ``rgb``'s dtype, top to
    bottom (the quantisation is ``floor(clamp(x, 0, 1) * peak + 0.5)``). Float ``rgb`` (pixels
    in [0, 1]) gives float rows clamped to [0, 1], not quantised.
    ``progress(1)`` is called after each tile.
    """
    _check_rgb(rgb)
    peak = _peak(rgb.dtype)
    integer = np.issubdtype(rgb.dtype, np.integer)
    scale = int(model.scale)
    device = next(model.parameters()).device
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None]  # a view: no copy, no float image

    def emit(row: int, rows: torch.Tensor) -> None:
        values = rows[0].clamp_(0, 1)
        if integer:
            values = values.mul_(peak).add_(0.5).floor_()
        sink(row, values.permute(1, 2, 0).numpy().astype(rgb.dtype))

    tiled_restore(model.restore, image, scale, tile, overlap, align=model.size_divisor,
                  sink=emit, device=device, prepare=lambda t: t.float().div_(peak),
                  progress=progress)


def restore_array(model: torch.nn.Module, rgb: np.ndarray, tile: int = DEFAULT_TILE,
                  overlap: int = DEFAULT_OVERLAP) -> np.ndarray:
    """Restore an ``(H, W, 3)`` uint8/uint16 (or float, in [0, 1]) array.

    Returns ``(sH, sW, 3)`` of the same dtype.

    Built on :func:`restore_rows`: the rows are written into the returned array.

    Example:
        >>> restore_array(model, np.zeros((100, 80, 3), np.uint8)).shape  # doctest: +SKIP
        (200, 160, 3)
    """
    _check_rgb(rgb)
    scale = int(model.scale)
    out = np.empty((rgb.shape[0] * scale, rgb.shape[1] * scale, 3), rgb.dtype)

    def sink(row: int, rows: np.ndarray) -> None:
        out[row:row + rows.shape[0]] = rows

    restore_rows(model, rgb, sink, tile, overlap)
    return out


def _resize_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Upscale an alpha channel with MATLAB bicubic (the colour goes through the network)."""
    if scale == 1:
        return alpha
    peak = _peak(alpha.dtype)
    up = imresize_tensor(torch.from_numpy(alpha.astype(np.float32) / peak)[None], float(scale))
    up = up[0].clamp_(0, 1).numpy()
    if not np.issubdtype(alpha.dtype, np.integer):
        return up.astype(alpha.dtype)
    return np.floor(up * peak + 0.5).astype(alpha.dtype)


@dataclass
class PendingRestoration:
    """What the handler's ``predict`` returns: the restoration runs when it is written.

    :meth:`run` streams the output rows to a sink (the PNG writer); :meth:`array` returns
    the whole output. Errors surface in ``write``, which counts them as the input's failure.
    """

    model: torch.nn.Module
    image: LoadedImage
    tile: int
    overlap: int

    @property
    def grid(self) -> TileGrid:
        """The tiles of this image."""
        height, width = self.image.rgb.shape[:2]
        return TileGrid.build(height, width, self.tile, self.overlap,
                              int(getattr(self.model, 'size_divisor', 1)))

    @property
    def shape(self) -> Tuple[int, int]:
        """Output ``(sH, sW)``."""
        scale = int(self.model.scale)
        return self.image.rgb.shape[0] * scale, self.image.rgb.shape[1] * scale

    def run(self, sink: RowSink, progress: Optional[Callable[[int], object]] = None) -> None:
        """Restore, handing ``(r, sW, 3)`` output rows to ``sink`` (see :func:`restore_rows`)."""
        restore_rows(self.model, self.image.rgb, sink, self.tile, self.overlap, progress)

    def array(self) -> np.ndarray:
        """The whole ``(sH, sW, 3)`` output."""
        return restore_array(self.model, self.image.rgb, self.tile, self.overlap)


def restoration_handler(cfg: Any, model: torch.nn.Module,
                        options: Optional[InferOptions] = None) -> Handler:
    """The inference :class:`~densekit.inference.Handler` of ``sr`` and ``derain`` configs.

    Tile and overlap come from ``options`` (``--tile`` / ``--overlap``), else the config's
    ``infer_cfg``, else 512 and 16 input pixels. With ``options.progress`` a tile bar is shown
    for images with more than one row of tiles.
    """
    options = options or InferOptions()
    infer_cfg = dict(cfg.get('infer_cfg') or {})
    tile = int(options.tile or infer_cfg.get('tile', DEFAULT_TILE))
    overlap = int(options.overlap if options.overlap is not None
                  else infer_cfg.get('overlap', DEFAULT_OVERLAP))
    check_tiling(tile, overlap)
    scale = int(getattr(model, 'scale', 1))
    tag = f'x{scale}' if scale > 1 else 'derain'

    def outputs(path: str) -> List[str]:
        return [f'{osp.splitext(osp.basename(path))[0]}_{tag}{output_suffix(path)}']

    def predict(images: List[LoadedImage]) -> List[PendingRestoration]:
        return [PendingRestoration(model, image, tile, overlap) for image in images]

    def from_input(array: Any) -> LoadedImage:
        rgb, alpha, gray = split_image_array(array)
        return LoadedImage(rgb, alpha, gray)

    def result(source: Any, image: LoadedImage, pending: PendingRestoration) -> np.ndarray:
        alpha = None if image.alpha is None else _resize_alpha(image.alpha, scale)
        pixels = file_pixels(pending.array(), alpha, image.gray)
        if isinstance(source, np.ndarray) and source.ndim == 3 and pixels.ndim == 2:
            pixels = pixels[..., None]  # (H, W, 1) in, (sH, sW, 1) out
        return pixels

    def write(path: str, image: LoadedImage, pending: PendingRestoration,
              out_paths: List[str]) -> None:
        alpha = None if image.alpha is None else _resize_alpha(image.alpha, scale)
        grid = pending.grid
        bar = tqdm(total=grid.num_tiles, desc=osp.basename(path), unit='tile', leave=False,
                   disable=not options.progress or len(grid.rows) < 2)
        try:
            if output_suffix(path) == '.png':
                _write_png(pending, alpha, out_paths[0], bar.update)
            else:  # TIFF: the whole output in its integer dtype, encoded by OpenCV
                rgb = np.empty((*pending.shape, 3), image.rgb.dtype)

                def sink(row: int, rows: np.ndarray) -> None:
                    rgb[row:row + rows.shape[0]] = rows

                pending.run(sink, bar.update)
                atomic_write_bytes(encode_image(output_suffix(path), rgb, alpha, image.gray),
                                   out_paths[0])
        finally:
            bar.close()

    return Handler(IMAGE_SUFFIXES, outputs, read_image, predict, write,
                   from_input=from_input, result=result)


def _write_png(pending: PendingRestoration, alpha: Optional[np.ndarray], path: str,
               progress: Optional[Callable[[int], object]] = None) -> None:
    """Stream the restoration into a PNG at ``path`` (atomically: a temp file, then renamed)."""
    image = pending.image
    height, width = pending.shape
    channels = (1 if image.gray else 3) + (alpha is not None)
    with atomic_open(path, 'wb') as handle:
        png = PNGStreamWriter(handle, width, height, channels, image.rgb.dtype)

        def sink(row: int, rows: np.ndarray) -> None:
            band = None if alpha is None else alpha[row:row + rows.shape[0]]
            png.write_rows(file_pixels(rows, band, image.gray))

        pending.run(sink, progress)
        png.close()


register_handler('sr', restoration_handler)
register_handler('derain', restoration_handler)
