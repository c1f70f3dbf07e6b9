"""``Restorer``: the mmengine model of super-resolution and deraining.

``Restorer(backbone, head)`` runs ``head(backbone(x), x)`` on normalised inputs and returns
images in [0, 1]: outputs are de-normalised with the preprocessor's mean/std (for luma-only
models, the network sees BT.601 Y and chroma is upscaled with MATLAB bicubic). Inputs are
padded (reflect) to the body's ``size_divisor`` and outputs cropped back.

Each batch is restored at the ``scale`` of its samples' metainfo (one per batch; MDSR routes
it to that scale's pre-processing blocks and upsampler; see
:class:`~densekit.tasks.restoration.multiscale.MixedScaleBatchSampler`).

``forward(mode=...)`` follows mmengine: ``'loss'`` -> ``{'loss_pix': ...}`` against the
targets, ``'predict'`` -> data samples with ``pred_img`` clamped to [0, 1], ``'tensor'`` ->
raw ``(N, C, sH, sW)`` output. :meth:`restore` maps [0, 1] images to [0, 1] images, which is
what tiled inference calls.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor

from densekit.errors import positive_int
from densekit.registry import MODELS
from densekit.tasks.restoration.color import rgb2ycbcr, ycbcr2rgb
from densekit.tasks.restoration.imresize import imresize_tensor

__all__ = ['Restorer']


@MODELS.register_module()
class Restorer(BaseModel):
    """Image-to-image restoration model (body + reconstruction head).

    Args:
        backbone: Body config (e.g. ``dict(type='EDSRBody')``).
        head: Reconstruction head config (e.g. ``dict(type='PixelShuffleHead', ...)``).
        scale: Output size / input size (1 for deraining).
        pixel_loss: Loss config (``PixelL1Loss`` or ``CharbonnierLoss``).
        luma_only: Run the network on BT.601 Y only (FSRCNN); chroma is upscaled bicubically.
        size_divisor: Pad inputs to a multiple of this (default: the body's ``size_divisor``).
        data_preprocessor: Defaults to ``RestorationPreprocessor()``.
        init_cfg: mmengine init config.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, scale*H, scale*W)``; e.g. x2: (1, 3, 48, 48) -> (1, 3, 96, 96).
    """

    def __init__(self, backbone: dict, head: dict, scale: int = 1,
                 pixel_loss: Optional[dict] = None, luma_only: bool = False,
                 size_divisor: Optional[int] = None, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='densekit.RestorationPreprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        positive_int(scale, 'scale')
        for name, cfg in (('backbone', backbone), ('head', head)):
            if not isinstance(cfg, dict) or 'type' not in cfg:
                raise TypeError(f"{name} must be a config dict with a 'type', got {cfg!r}")
        self.scale = scale
        self.luma_only = luma_only
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(head)
        self.pixel_loss = MODELS.build(pixel_loss or dict(type='densekit.CharbonnierLoss'))
        divisor = size_divisor or getattr(self.backbone, 'size_divisor', 1)
        positive_int(divisor, 'size_divisor')
        self.size_divisor = divisor

    def _network(self, x: Tensor, scale: int) -> Tensor:
        kwargs = dict(scale=scale) if getattr(self.backbone, 'multi_scale', False) else {}
        feats = self.backbone(x, **kwargs)
        kwargs = dict(scale=scale) if getattr(self.head, 'multi_scale', False) else {}
        return self.head(feats, x, **kwargs)

    def _pad(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % self.size_divisor, -w % self.size_divisor
        if self.size_divisor > 1 and (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            return F.pad(x, (0, pw, 0, ph), mode='reflect')  # symbolic sizes: always pad
        if not ph and not pw:
            return x
        mode = 'reflect' if ph < h and pw < w else 'replicate'
        return F.pad(x, (0, pw, 0, ph), mode=mode)

    def forward_tensor(self, inputs: Tensor, scale: Optional[int] = None) -> Tensor:
        """Normalised ``(N, C, H, W)`` inputs -> ``(N, C, sH, sW)`` images in [0, 1] units."""
        scale = self.scale if scale is None else scale
        h, w = inputs.shape[-2:]
        pre = self.data_preprocessor
        if self.luma_only:
            ycbcr = rgb2ycbcr(pre.denormalize(inputs))
            luma = self._network(self._pad(ycbcr[:, :1]), scale)[..., :h * scale, :w * scale]
            chroma = imresize_tensor(ycbcr[:, 1:], float(scale)) if scale > 1 else ycbcr[:, 1:]
            return ycbcr2rgb(torch.cat([luma, chroma], dim=1))
        out = self._network(self._pad(inputs), scale)[..., :h * scale, :w * scale]
        return pre.denormalize(out)

    @torch.no_grad()
    def restore(self, images: Tensor, scale: Optional[int] = None, clamp: bool = True) -> Tensor:
        """Restore ``(N, 3, H, W)`` images in [0, 1] (no preprocessing needed).

        Example:
            >>> model.restore(torch.rand(1, 3, 40, 40)).shape  # doctest: +SKIP
            torch.Size([1, 3, 80, 80])
        """
        if images.dim() != 4:
            raise ValueError(f'images must be (N, C, H, W), got shape {tuple(images.shape)}')
        out = self.forward_tensor(self.data_preprocessor.normalize(images), scale)
        return out.clamp(0, 1) if clamp else out

    @property
    def scales(self) -> tuple:
        """The scales this model restores: the head's (MDSR) or ``(scale,)``."""
        if getattr(self.head, 'multi_scale', False):
            return tuple(self.head.scales)
        return (self.scale,)

    def _batch_scale(self, data_samples: Optional[List[BaseDataElement]]) -> Optional[int]:
        """The one scale of a batch (from the samples' metainfo), routed to its head."""
        if not data_samples:
            return None
        found = [s.metainfo.get('scale') for s in data_samples]
        if all(s is None for s in found):
            return None
        if len(set(found)) > 1:
            raise ValueError(f'a batch must have one scale, got samples at scales {found}; '
                             "train mixed scales with batch_sampler=dict(type='densekit."
                             "MixedScaleBatchSampler')")
        scale = int(found[0])
        if scale not in self.scales:
            raise ValueError(f'the batch is at scale {scale} but this model restores scales '
                             f'{self.scales} (an MDSR head needs scales=(...) with it)')
        return scale

    def forward(self, inputs: Tensor, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor') -> Union[Tensor, Dict[str, Tensor], List[Any]]:
        """mmengine entry point: ``mode`` is ``'loss'``, ``'predict'`` or ``'tensor'``."""
        if mode not in ('loss', 'predict', 'tensor'):
            raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")
        scale = self._batch_scale(data_samples)
        out = self.forward_tensor(inputs, scale)
        if mode == 'tensor':
            return out
        if mode == 'loss':
            if not data_samples or any('gt_img' not in s for s in data_samples):
                raise ValueError("mode='loss' needs data samples with gt_img")
            gt = torch.stack([s.gt_img for s in data_samples])
            if gt.shape != out.shape:
                raise ValueError(f'target shape {tuple(gt.shape)} does not match the output '
                                 f'{tuple(out.shape)}')
            return dict(loss_pix=self.pixel_loss(out, gt))
        out = out.clamp(0, 1)
        samples = data_samples or [BaseDataElement() for _ in range(len(out))]
        for sample, image in zip(samples, out):
            sample.pred_img = image
        return samples
