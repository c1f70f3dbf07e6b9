"""Look-up tables of a trained RC-LUT network, and SR inference from the tables alone.

:func:`convert_to_luts` turns an :class:`~densekit.backbones.RCLUTBody` (alone or inside a
luma-only ``Restorer`` with a ``PixelShuffleSkipHead``) into a :class:`LUTModel` of numpy
arrays; :meth:`LUTModel.upscale_luma` and :meth:`LUTModel.restore_rgb` run super-resolution
with table look-ups, a 4-simplex interpolation and (for the skip) MATLAB bicubic, without any
module of the network.

Tables:

* **RC tables** ``rc_table[p, v] = f_p(v / 255) / n^2`` for the n^2 window positions ``p`` and
  all 256 pixel values ``v`` (float32): every input an 8-bit pixel can take, so no sampling.
  The RC code of a pixel is ``clip(round(127 tanh(sum_p rc_table[p, pixel_p])) + 127, 0, 255)``
  as in the network: the two agree except where the float sum lands within rounding noise
  (~1e-6) of a half-integer, where they differ by one code (the tests measure how rarely);
* **unit table** ``unit_table[i, j, k, l] = round(127 tanh(unit(g_i, g_j, g_k, g_l)))`` (int8,
  ``scale^2`` sub-pixels) on the 17 sample codes ``g = 0, 16, ..., 240, 255`` (4-bit sampling as
  in SR-LUT/MuLUT). Codes between samples are interpolated on the Kuhn triangulation of each
  cell (4-simplex interpolation: sort the four fractional parts, walk the cell's corners in that
  order). Unlike SR-LUT's ``v % 16 / 16`` the last cell has width 15, so code 255 hits its
  sample exactly.

What the tables reproduce (``tests/backbones/test_rclut.py`` checks each):

* at sample codes the unit table *is* the network: equal int8 values;
* between samples the interpolated value is a convex combination of the five corners of the
  point's cell, so it differs from the network's ``round(127 tanh(unit))`` at that point by at
  most the spread of the network's values over the cell, which interval arithmetic through the
  unit bounds per cell (:func:`unit_error_bound`);
* the interpolation is exact for every affine function of the four codes.

``nbytes`` is the tables' storage: n^2 x 256 x 4 B (RC) + 17^4 x scale^2 B (unit), e.g.
25,600 + 334,084 = 359,684 B for n = 5 at x2.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from densekit.errors import ArgumentError

__all__ = ['LUTModel', 'convert_to_luts', 'unit_error_bound', 'sample_codes',
           'simplex_interpolate']

SAMPLE_INTERVAL = 16  # 4-bit sampling: 17 points per input


def sample_codes(interval: int = SAMPLE_INTERVAL) -> np.ndarray:
    """The sampled codes ``0, interval, ..., 255`` (``256 / interval + 1`` points)."""
    if interval not in (1, 2, 4, 8, 16, 32, 64, 128):
        raise ArgumentError(f'interval must be a power of two <= 128, got {interval!r}')
    grid = np.arange(0, 257, interval)
    grid[-1] = 255
    return grid


def _cell_tables(interval: int) -> tuple:
    """Per 8-bit code: its cell's index and its fraction of the way through the cell."""
    grid = sample_codes(interval)
    codes = np.arange(256)
    cell = np.minimum(codes // interval, len(grid) - 2)
    frac = (codes - grid[cell]) / (grid[cell + 1] - grid[cell])
    return cell.astype(np.int64), frac.astype(np.float32)


def _interpolate(flat: np.ndarray, points: int, coords: list, interval: int) -> np.ndarray:
    """Kuhn-simplex interpolation of ``flat`` (``(points^4, C)``) at four code arrays."""
    cell_of, frac_of = _cell_tables(interval)
    strides = (points ** 3, points ** 2, points, 1)
    corner = np.zeros(coords[0].shape, np.int64)
    fracs, steps = [], []
    for code, stride in zip(coords, strides):  # np.take: much faster than fancy indexing
        corner += np.take(cell_of, code) * stride
        fracs.append(np.take(frac_of, code))
        steps.append(np.full(code.shape, stride, np.int64))
    # sort the fractions in descending order (a 5-comparator network), carrying the strides
    for i, j in ((0, 1), (2, 3), (0, 2), (1, 3), (1, 2)):
        swap = fracs[i] < fracs[j]
        fracs[i], fracs[j] = np.where(swap, fracs[j], fracs[i]), np.where(swap, fracs[i], fracs[j])
        steps[i], steps[j] = np.where(swap, steps[j], steps[i]), np.where(swap, steps[i], steps[j])
    out = np.take(flat, corner, axis=0)
    out *= (1.0 - fracs[0])[:, None]
    for k in range(4):
        corner += steps[k]
        vertex = np.take(flat, corner, axis=0)
        vertex *= (fracs[k] - fracs[k + 1] if k < 3 else fracs[3])[:, None]
        out += vertex
    return out


def simplex_interpolate(table: np.ndarray, codes: np.ndarray,
                        interval: int = SAMPLE_INTERVAL) -> np.ndarray:
    """4-simplex interpolation of ``table`` (``(L, L, L, L, C)``, sampled at
    :func:`sample_codes`) at integer ``codes`` (``(P, 4)`` in 0..255); returns ``(P, C)`` float32.

    Each cell of the grid is split into the 24 simplices of the Kuhn triangulation; the point's
    simplex has the corners reached from the cell's lower corner by stepping the coordinates in
    descending order of their fractional parts, weighted by the differences of those fractions.
    """
    points = len(sample_codes(interval))
    if table.ndim != 5 or table.shape[:4] != (points,) * 4:
        raise ValueError(f'table must be ({points}, {points}, {points}, {points}, C), got '
                         f'{table.shape}')
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != 4 or codes.min(initial=0) < 0 or \
            codes.max(initial=0) > 255:
        raise ValueError(f'codes must be (P, 4) integers in 0..255, got shape {codes.shape}')
    flat = table.reshape(points ** 4, -1).astype(np.float32)
    return _interpolate(flat, points, [codes[:, k].astype(np.int64) for k in range(4)], interval)


@dataclasses.dataclass
class LUTModel:
    """The tables of an RC-LUT network (see the module docstring).

    Attributes:
        scale: Upscaling factor.
        rc_size: RC window n.
        rotations: Rotation ensemble size (1, 2 or 4).
        input_skip: ``'bicubic'``, ``'bilinear'`` or None: what the residual is added to.
        rc_table: ``(n^2, 256)`` float32.
        unit_table: ``(17, 17, 17, 17, scale^2)`` int8.
        interval: Sampling interval of the unit table (16).
    """

    scale: int
    rc_size: int
    rotations: int
    input_skip: Optional[str]
    rc_table: np.ndarray
    unit_table: np.ndarray
    interval: int = SAMPLE_INTERVAL
    _flat: Optional[np.ndarray] = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        n2, points = self.rc_size ** 2, len(sample_codes(self.interval))
        if self.rc_table.shape != (n2, 256) or self.rc_table.dtype != np.float32:
            raise ValueError(f'rc_table must be float32 ({n2}, 256), got {self.rc_table.dtype} '
                             f'{self.rc_table.shape}')
        want = (points,) * 4 + (self.scale ** 2,)
        if self.unit_table.shape != want or self.unit_table.dtype != np.int8:
            raise ValueError(f'unit_table must be int8 {want}, got {self.unit_table.dtype} '
                             f'{self.unit_table.shape}')
        if self.rotations not in (1, 2, 4):
            raise ValueError(f'rotations must be 1, 2 or 4, got {self.rotations!r}')

    @property
    def nbytes(self) -> int:
        """Bytes of table storage (RC tables + unit table)."""
        return int(self.rc_table.nbytes + self.unit_table.nbytes)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: Union[str, Path]) -> Path:
        """Write the tables to an ``.npz`` atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix='.npz', dir=path.parent)
        try:
            with os.fdopen(fd, 'wb') as f:
                np.savez(f, rc_table=self.rc_table, unit_table=self.unit_table,
                         meta=np.array([self.scale, self.rc_size, self.rotations,
                                        self.interval]),
                         input_skip=np.array(self.input_skip or ''))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> LUTModel:
        """Read tables written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            scale, rc_size, rotations, interval = (int(v) for v in data['meta'])
            skip = str(data['input_skip']) or None
            return cls(scale, rc_size, rotations, skip, data['rc_table'], data['unit_table'],
                       interval)

    # -- inference ------------------------------------------------------------------------------
    def rc_codes(self, codes: np.ndarray) -> np.ndarray:
        """RC codes of a padded ``(H + n, W + n)`` uint8 code image -> ``(H + 1, W + 1)``."""
        n = self.rc_size
        h, w = codes.shape[0] - n + 1, codes.shape[1] - n + 1
        acc = np.zeros((h, w), np.float32)
        for p in range(n * n):
            dy, dx = divmod(p, n)
            acc += np.take(self.rc_table[p], codes[dy:dy + h, dx:dx + w])
        return np.clip(np.round(np.tanh(acc) * 127.0) + 127.0, 0, 255).astype(np.uint8)

    def unit_lookup(self, rc: np.ndarray) -> np.ndarray:
        """``(H + 1, W + 1)`` RC codes -> ``(sH, sW)`` interpolated unit output (int8 units)."""
        h, w = rc.shape[0] - 1, rc.shape[1] - 1
        if self._flat is None:  # float32 copy of the int8 table: no conversion per look-up
            self._flat = self.unit_table.reshape(-1, self.scale ** 2).astype(np.float32)
        quad = [rc[:-1, :-1], rc[:-1, 1:], rc[1:, :-1], rc[1:, 1:]]
        out = _interpolate(self._flat, self.unit_table.shape[0], [q.ravel() for q in quad],
                           self.interval)
        s = self.scale
        return out.reshape(h, w, s, s).transpose(0, 2, 1, 3).reshape(h * s, w * s)

    def residual(self, luma: np.ndarray) -> np.ndarray:
        """``(H, W)`` luma in [0, 1] -> ``(sH, sW)`` residual in image units (no skip)."""
        if luma.ndim != 2:
            raise ValueError(f'luma must be (H, W), got shape {luma.shape}')
        codes = np.clip(np.round(luma.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
        total = np.zeros((luma.shape[0] * self.scale, luma.shape[1] * self.scale), np.float32)
        n = self.rc_size
        for r in range(self.rotations):
            k = r * (4 // self.rotations)
            rotated = np.pad(np.rot90(codes, k), ((0, n), (0, n)), mode='edge')
            total += np.rot90(self.unit_lookup(self.rc_codes(rotated)), -k)
        return total / np.float32(self.rotations * 127.0)

    def upscale_luma(self, luma: np.ndarray) -> np.ndarray:
        """``(H, W)`` luma in [0, 1] -> ``(sH, sW)`` float32 (unclamped), skip included."""
        out = self.residual(luma)
        if self.input_skip:
            from densekit.heads.reconstruction import upsample_image
            lq = torch.from_numpy(np.ascontiguousarray(luma, dtype=np.float32))[None, None]
            out = out + upsample_image(lq, self.scale, self.input_skip)[0, 0].numpy()
        return out

    def restore_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB -> ``(sH, sW, 3)`` uint8: tables on BT.601 Y, chroma MATLAB
        bicubic (as ``Restorer(luma_only=True)``)."""
        from densekit.tasks.restoration.color import rgb2ycbcr, ycbcr2rgb
        from densekit.tasks.restoration.imresize import imresize_tensor

        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f'rgb must be (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}')
        image = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        ycbcr = rgb2ycbcr(image)
        if self.input_skip == 'bicubic':  # one resize for the luma skip and the chroma
            up = imresize_tensor(ycbcr, float(self.scale))
            up[0, 0] += torch.from_numpy(self.residual(ycbcr[0, 0].numpy()))
        else:
            up = imresize_tensor(ycbcr, float(self.scale))
            up[0, 0] = torch.from_numpy(self.upscale_luma(ycbcr[0, 0].numpy()))
        out = ycbcr2rgb(up)[0].permute(1, 2, 0).clamp(0, 1)
        return (out * 255.0).round().to(torch.uint8).numpy()


def _body_and_skip(model: nn.Module) -> tuple:
    from densekit.backbones.rclut import RCLUTBody
    from densekit.heads.shuffle_head import PixelShuffleSkipHead

    if isinstance(model, RCLUTBody):
        return model, None
    body, head = getattr(model, 'backbone', None), getattr(model, 'head', None)
    if not isinstance(body, RCLUTBody) or not isinstance(head, PixelShuffleSkipHead):
        raise TypeError('convert_to_luts needs an RCLUTBody, or a Restorer with an RCLUTBody '
                        f'backbone and a PixelShuffleSkipHead; got {type(model).__name__} '
                        f'({type(body).__name__}, {type(head).__name__})')
    if not getattr(model, 'luma_only', True) and body.in_channels != 1:
        raise TypeError('convert_to_luts supports luma-only Restorers (one channel)')
    if head.scale != body.scale:
        raise ValueError(f'head scale {head.scale} != body scale {body.scale}')
    return body, head.input_skip


@torch.no_grad()
def convert_to_luts(model: nn.Module, interval: int = SAMPLE_INTERVAL) -> LUTModel:
    """Tables of a trained RC-LUT network (an ``RCLUTBody`` or a ``Restorer`` holding one).

    Example:
        >>> lut = convert_to_luts(restorer)  # doctest: +SKIP
        >>> lut.nbytes, lut.upscale_luma(y).shape  # doctest: +SKIP
        (359684, (2 * H, 2 * W))
    """
    body, skip = _body_and_skip(model)
    was_training = body.training
    body.eval()
    try:
        param = next(body.parameters())
        values = torch.arange(256, dtype=param.dtype, device=param.device).view(1, 1, 1, 256)
        maps = body.rc.position_maps(values)[0, :, 0]                    # (n^2, 256)
        rc_table = maps * body.rc.mean_weight.max().to(maps.dtype)  # the mean's 1 / n^2
        grid = torch.as_tensor(sample_codes(interval), dtype=param.dtype, device=param.device)
        quads = torch.cartesian_prod(grid, grid, grid, grid).view(-1, 1, 2, 2)
        unit = torch.cat([torch.round(body.unit(chunk) * 127.0)
                          for chunk in quads.split(16384)])              # (L^4, s^2, 1, 1)
    finally:
        body.train(was_training)
    points = len(grid)
    unit_table = unit.view(points, points, points, points, -1).to(torch.int8).cpu().numpy()
    return LUTModel(body.scale, body.rc_size, body.rotations, skip,
                    rc_table.float().cpu().numpy(), unit_table, interval)


@torch.no_grad()
def unit_error_bound(model: nn.Module, interval: int = SAMPLE_INTERVAL) -> np.ndarray:
    """Per table cell, the largest possible |interpolated - network| of the unit in int8 codes.

    Interval arithmetic through the unit over each cell's box of inputs (center/radius form:
    a conv maps the radius by ``|W|``; ReLU and tanh are monotone) bounds its output by
    ``[lo, hi]`` on the whole cell, so every corner value and the network's value at any point
    of the cell lie in ``[round(127 tanh lo), round(127 tanh hi)]``; the interpolation, a convex
    combination of corner values, is off by at most that width. Returns
    ``(L-1, L-1, L-1, L-1, scale^2)`` float64 (e.g. 16^4 x 4 cells).
    """
    body, _ = _body_and_skip(model)
    unit = body.unit
    grid = torch.as_tensor(sample_codes(interval), dtype=torch.float64) / 255.0
    lo_1d, hi_1d = grid[:-1], grid[1:]
    cells = len(lo_1d)
    lo = torch.cartesian_prod(lo_1d, lo_1d, lo_1d, lo_1d)
    hi = torch.cartesian_prod(hi_1d, hi_1d, hi_1d, hi_1d)
    center, radius = (lo + hi) / 2, (hi - lo) / 2

    def affine(block: nn.Module, c: torch.Tensor, r: torch.Tensor, relu: bool) -> tuple:
        weight = block.conv.weight.detach().double().flatten(1)
        bias = block.conv.bias.detach().double() if block.conv.bias is not None else 0.0
        c, r = c @ weight.T + bias, r @ weight.abs().T
        if relu:
            return (((c - r).clamp_min(0) + (c + r).clamp_min(0)) / 2,
                    ((c + r).clamp_min(0) - (c - r).clamp_min(0)) / 2)
        return c, r

    c, r = affine(unit.stem, center, radius, True)
    for layer in unit.dense:
        c_new, r_new = affine(layer, c, r, True)
        c, r = torch.cat([c, c_new], 1), torch.cat([r, r_new], 1)
    c, r = affine(unit.out, c, r, False)
    width = torch.round(127 * torch.tanh(c + r)) - torch.round(127 * torch.tanh(c - r))
    return width.view(cells, cells, cells, cells, -1).numpy()
