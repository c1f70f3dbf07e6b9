"""``densekit infer`` for restoration configs (``task = 'sr'`` or ``'derain'``).

Each input is decoded with its bit depth, alpha and EXIF orientation (:mod:`.imageio`),
restored with :func:`~.tiling.tiled_restore` (tile and overlap from the config's ``infer_cfg``,
default 512 and 16 input pixels) and written atomically next to nothing it read:
``<stem>_x<scale>.png`` for SR, ``<stem>_derain.png`` for deraining (``.tif`` for TIFF inputs).
The output has the input's bit depth and channels; SR upscales alpha with MATLAB bicubic,
deraining passes it through.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, List, Optional

import numpy as np
import torch

from densekit.fileio import atomic_write_bytes
from densekit.inference import IMAGE_SUFFIXES, Handler, InferOptions, register_handler
from densekit.tasks.restoration.imageio import LoadedImage, encode_image, output_suffix, read_image
from densekit.tasks.restoration.imresize import imresize_tensor
from densekit.tasks.restoration.tiling import check_tiling, tiled_restore

__all__ = ['restore_array', 'restoration_handler', 'DEFAULT_TILE', 'DEFAULT_OVERLAP']

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 16


def restore_array(model: torch.nn.Module, rgb: np.ndarray, tile: int = DEFAULT_TILE,
                  overlap: int = DEFAULT_OVERLAP) -> np.ndarray:
    """Restore an ``(H, W, 3)`` uint8/uint16 array; returns ``(sH, sW, 3)`` of the same dtype.

    Example:
        >>> restore_array(model, np.zeros((100, 80, 3), np.uint8)).shape  # doctest: +SKIP
        (200, 160, 3)
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'rgb must be an (H, W, 3) uint8/uint16 array, got {rgb.shape} '
                         f'{rgb.dtype}')
    peak = float(np.iinfo(rgb.dtype).max)
    scale = int(model.scale)
    device = next(model.parameters()).device
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div_(peak)
    out = np.empty((rgb.shape[0] * scale, rgb.shape[1] * scale, 3), rgb.dtype)

    def sink(row: int, rows: torch.Tensor) -> None:
        values = rows[0].clamp_(0, 1).mul_(peak).add_(0.5).floor_().permute(1, 2, 0)
        out[row:row + values.shape[0]] = values.numpy().astype(rgb.dtype)

    tiled_restore(model.restore, image, scale, tile, overlap, align=model.size_divisor,
                  sink=sink, device=device)
    return out


def _resize_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Upscale an alpha channel with MATLAB bicubic (the colour goes through the network)."""
    if scale == 1:
        return alpha
    peak = float(np.iinfo(alpha.dtype).max)
    up = imresize_tensor(torch.from_numpy(alpha.astype(np.float32) / peak)[None], float(scale))
    return np.floor(up[0].clamp_(0, 1).numpy() * peak + 0.5).astype(alpha.dtype)


def restoration_handler(cfg: Any, model: torch.nn.Module,
                        options: Optional[InferOptions] = None) -> Handler:
    """The inference :class:`~densekit.inference.Handler` of ``sr`` and ``derain`` configs.

    Tile and overlap come from ``options`` (``--tile`` / ``--overlap``), else the config's
    ``infer_cfg``, else 512 and 16 input pixels.
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

    def predict(images: List[LoadedImage]) -> List[np.ndarray]:
        return [restore_array(model, image.rgb, tile, overlap) for image in images]

    def write(path: str, image: LoadedImage, rgb: np.ndarray, out_paths: List[str]) -> None:
        alpha = None if image.alpha is None else _resize_alpha(image.alpha, scale)
        atomic_write_bytes(encode_image(output_suffix(path), rgb, alpha, image.gray),
                           out_paths[0])

    return Handler(IMAGE_SUFFIXES, outputs, read_image, predict, write)


register_handler('sr', restoration_handler)
register_handler('derain', restoration_handler)
