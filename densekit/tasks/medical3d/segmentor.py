"""mmengine model for volume segmentation: backbone -> optional neck -> U-Net decode head.

Training takes patch batches ``(N, C, D, H, W)`` and returns Dice + CE losses (deep
supervision). Prediction segments each whole volume with sliding windows (Gaussian weights,
configurable overlap and window batch, optional mirror TTA) slab by slab
(:func:`~densekit.windowed.engine.sliding_window_labels`).

Data samples are ``mmengine.structures.BaseDataElement`` with a ``gt_seg`` ``(D, H, W)`` tensor
and metainfo (``case_id``, ``spacing``, ...); prediction adds ``pred_seg``.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor

from densekit.registry import MODELS
from densekit.windowed.engine import (
    sliding_window_inference,
    sliding_window_labels,
)

__all__ = ['MedicalSegmentor', 'MedicalDataPreprocessor', 'DEFAULT_TEST_CFG']

DEFAULT_TEST_CFG = dict(roi_size=None, sw_batch_size=1, overlap=0.5, mode='gaussian',
                        sigma_scale=0.125, mirror_axes=None, progress=False)


def one_volume(volume: Tensor, spatial_dims: int, caller: str) -> Tensor:
    """``volume`` as a batch of one, ``(1, C, *spatial)``; a ``(C, *spatial)`` input is unsqueezed.

    Raises:
        ValueError: ``volume`` is not one volume with ``spatial_dims`` spatial dimensions.
    """
    if volume.dim() == spatial_dims + 1:
        volume = volume[None]
    if volume.dim() != spatial_dims + 2 or volume.shape[0] != 1:
        raise ValueError(f'{caller} expects one volume (C, *spatial) with {spatial_dims} '
                         f'spatial dims, got {tuple(volume.shape)}')
    return volume


@MODELS.register_module()
class MedicalDataPreprocessor(BaseDataPreprocessor):
    """Move a batch to the model's device; stack equally sized volumes into ``(N, C, *spatial)``.

    Volumes of different sizes (whole-volume evaluation) stay a list of ``(C, *spatial)``.
    """

    def forward(self, data: dict, training: bool = False) -> dict:  # noqa: D102
        data = self.cast_data(data)
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)):
            inputs = [t.float() for t in inputs]
            if len({tuple(t.shape) for t in inputs}) == 1:
                inputs = torch.stack(inputs)
        return dict(inputs=inputs, data_samples=data.get('data_samples'))


@MODELS.register_module()
class MedicalSegmentor(BaseModel):
    """Volume segmentor.

    Args:
        backbone: Encoder config (e.g. ``dict(type='ResUNetEncoder', arch='tiny')``).
        decode_head: Decoder config (``dict(type='UNetDecoderHead', ...)``), or None for a
            backbone that is the whole network (e.g. ``densekit.MeshNet``): it returns the
            logits ``(N, num_classes, *spatial)`` itself and has a ``num_classes`` attribute.
        neck: Optional neck between them (``densekit.FPN`` / ``densekit.ASPP`` with
            ``spatial_dims=3``).
        loss: Loss config (default ``DiceCELoss``).
        test_cfg: Sliding-window settings: ``roi_size`` (window, default: the whole volume),
            ``sw_batch_size``, ``overlap``, ``mode``, ``sigma_scale``, ``mirror_axes``
            (spatial axes to mirror for test-time augmentation, e.g. ``(0, 1, 2)``),
            ``progress``.
        data_preprocessor: Default ``MedicalDataPreprocessor``.
        init_cfg: mmengine init config.

    Example:
        >>> model = MedicalSegmentor(
        ...     backbone=dict(type='ResUNetEncoder', in_channels=2, arch='tiny'),
        ...     decode_head=dict(type='UNetDecoderHead', in_channels=[8, 16, 32, 64],
        ...                      num_classes=3),
        ...     test_cfg=dict(roi_size=(32, 32, 32), overlap=0.5))
        >>> [tuple(o.shape) for o in model.logits(torch.rand(2, 2, 32, 32, 32), True)]
        [(2, 3, 32, 32, 32), (2, 3, 16, 16, 16), (2, 3, 8, 8, 8)]
        >>> model.eval().predict_volume(torch.rand(2, 40, 48, 36)).shape  # NCDHW minus N
        torch.Size([40, 48, 36])
    """
    per_sample_eval = True  # eval forward: samples independent, no state (batching.py)
    per_sample_unused = ('loss_fn', 'data_preprocessor')  # not run by predict_volume

    def __init__(self, backbone: dict, decode_head: Optional[dict] = None,
                 neck: Optional[dict] = None,
                 loss: Optional[dict] = None, test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Any = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor or
                         dict(type='MedicalDataPreprocessor'), init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        if decode_head is None and neck is not None:
            raise ValueError(f'neck={neck!r} needs a decode_head (decode_head=None means the '
                             f'backbone returns the logits itself)')
        self.neck = MODELS.build(neck) if neck is not None else None
        self.decode_head = MODELS.build(decode_head) if decode_head is not None else None
        head_classes = getattr(self.backbone if self.decode_head is None else self.decode_head,
                               'num_classes', None)
        if self.decode_head is None and (not isinstance(head_classes, int) or head_classes < 2):
            raise ValueError(f'decode_head=None needs a backbone that returns logits and has an '
                             f'int num_classes >= 2; {type(self.backbone).__name__} has '
                             f'num_classes={head_classes!r}')
        self.loss_fn = MODELS.build(loss or dict(type='DiceCELoss'))
        unknown = set(test_cfg or {}) - set(DEFAULT_TEST_CFG)
        if unknown:
            raise ValueError(f'unknown test_cfg keys {sorted(unknown)}; expected '
                             f'{sorted(DEFAULT_TEST_CFG)}')
        self.test_cfg = {**DEFAULT_TEST_CFG, **(test_cfg or {})}
        self.num_classes = head_classes

    # -- network -------------------------------------------------------------------------------
    def logits(self, x: Tensor, all_scales: bool = False) -> Union[Tensor, List[Tensor]]:
        """Network output for ``(N, C, *spatial)``: finest logits, or all levels."""
        feats = self.backbone(x)
        if self.decode_head is None:  # the backbone is the whole network (one output level)
            return [feats] if all_scales else feats
        if self.neck is not None:
            feats = self.neck(list(feats))
        return self.decode_head(list(feats), all_scales=all_scales)

    def _predictor(self, x: Tensor) -> Tensor:
        out = self.logits(x)
        axes = self.test_cfg['mirror_axes']
        if not axes:
            return out
        flips = [combo for r in range(1, len(axes) + 1)
                 for combo in itertools.combinations(axes, r)]
        for combo in flips:
            dims = [a + 2 for a in combo]
            out = out + torch.flip(self.logits(torch.flip(x, dims)), dims)
        return out / (len(flips) + 1)

    def _roi(self, spatial: Sequence[int]) -> tuple:
        roi = self.test_cfg['roi_size']
        stride = getattr(self.backbone, 'total_stride', (1,) * len(spatial))
        if roi is None:
            return tuple(math.ceil(s / t) * t for s, t in zip(spatial, stride))
        roi = (roi,) * len(spatial) if isinstance(roi, int) else tuple(roi)
        if len(roi) != len(spatial) or any(r % t for r, t in zip(roi, stride)):
            raise ValueError(f'test_cfg.roi_size={roi} must have {len(spatial)} sizes, each a '
                             f'multiple of the total stride {stride}')
        return roi

    @torch.no_grad()
    def predict_volume(self, volume: Tensor, labels: bool = True) -> Tensor:
        """Segment one volume with sliding windows.

        Args:
            volume: ``(C, D, H, W)`` (or ``(1, C, D, H, W)``), preprocessed.
            labels: Return labels ``(D, H, W)`` (uint8); else the blended logits
                ``(num_classes, D, H, W)``.
        """
        volume = one_volume(volume, getattr(self.backbone, 'spatial_dims', 3),
                            'predict_volume').float()
        cfg = self.test_cfg
        roi = self._roi(volume.shape[2:])
        was_training = self.training
        self.eval()
        try:
            if labels:
                out = sliding_window_labels(volume, roi, cfg['sw_batch_size'], self._predictor,
                                            overlap=cfg['overlap'], mode=cfg['mode'],
                                            sigma_scale=cfg['sigma_scale'],
                                            progress=cfg['progress'])
            else:
                out = sliding_window_inference(volume, roi, cfg['sw_batch_size'],
                                               self._predictor, overlap=cfg['overlap'],
                                               mode=cfg['mode'], sigma_scale=cfg['sigma_scale'],
                                               progress=cfg['progress'])
        finally:
            self.train(was_training)
        return out[0]

    # -- mmengine interface ----------------------------------------------------------------------
    def forward(self, inputs: Union[Tensor, List[Tensor]],
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor') -> Any:
        """``mode='loss'`` -> loss dict; ``'predict'`` -> data samples with ``pred_seg``;
        ``'tensor'`` -> finest logits ``(N, num_classes, *spatial)``."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.logits(inputs)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    def loss(self, inputs: Tensor, data_samples: List[BaseDataElement]) -> Dict[str, Tensor]:
        """Dice + CE (deep supervision) of a patch batch ``(N, C, *patch)``."""
        if not isinstance(inputs, Tensor):
            raise ValueError('training patches must all have the same size')
        target = torch.stack([sample.gt_seg for sample in data_samples]).long()
        return self.loss_fn(self.logits(inputs, all_scales=True), target)

    def predict(self, inputs: Union[Tensor, List[Tensor]],
                data_samples: Optional[List[BaseDataElement]] = None) -> List[BaseDataElement]:
        """Segment every volume of the batch; returns data samples with ``pred_seg``."""
        volumes = list(inputs)
        samples = data_samples or [BaseDataElement() for _ in volumes]
        for volume, sample in zip(volumes, samples):
            sample.pred_seg = self.predict_volume(volume)
        return samples
