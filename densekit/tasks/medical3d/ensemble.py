"""Ensembles of volume segmentors (``densekit infer --ensemble``): the softmax of every member
averaged window by window.

Each sliding window runs through every model (with its own mirror TTA), the softmax outputs
are averaged and blended once: the blend is linear, so the result equals the mean of the
members' blended softmax maps, but no full-volume buffer is ever held per model - labels come
from :func:`~.sliding_window.sliding_window_labels` (slab by slab), probabilities from one
full-size blend.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from densekit.tasks.medical3d.segmentor import one_volume
from densekit.windowed.engine import (
    sliding_window_inference,
    sliding_window_labels,
)

__all__ = ['softmax_ensemble', 'predict_ensemble']


def _check_members(models: Sequence[torch.nn.Module]) -> None:
    if not models:
        raise ValueError('an ensemble needs at least one model, got none')
    counts = {int(getattr(m, 'num_classes', -1)) for m in models}
    if len(counts) != 1:
        raise ValueError(f'ensemble members must predict the same classes, got class counts '
                         f'{sorted(counts)}')
    strides = {tuple(getattr(m.backbone, 'total_stride', ())) for m in models}
    if len(strides) != 1:
        raise ValueError(f'ensemble members must share the window layout (total stride), got '
                         f'{sorted(strides)}')


def softmax_ensemble(models: Sequence[torch.nn.Module]) -> Callable[[Tensor], Tensor]:
    """A window predictor: the mean over ``models`` of ``softmax(model logits)``."""
    _check_members(models)

    def predictor(windows: Tensor) -> Tensor:
        total = None
        for model in models:
            prob = torch.softmax(model._predictor(windows), dim=1)
            total = prob if total is None else total.add_(prob)
        return total.div_(len(models))

    return predictor


@torch.no_grad()
def predict_ensemble(models: Sequence[torch.nn.Module], volume: Tensor, labels: bool = True
                     ) -> Tensor:
    """Segment one preprocessed volume ``(C, D, H, W)`` with an ensemble.

    The first model's ``test_cfg`` (window, overlap, blending, window batch) drives the
    sliding window; each member applies its own mirror TTA.

    Returns:
        ``(D, H, W)`` uint8 labels, or with ``labels=False`` the blended mean softmax
        ``(num_classes, D, H, W)``.
    """
    _check_members(models)
    lead = models[0]
    volume = one_volume(volume, getattr(lead.backbone, 'spatial_dims', 3),
                        'predict_ensemble')
    volume = volume.to(next(lead.parameters()).dtype)
    cfg = lead.test_cfg
    roi = lead._roi(volume.shape[2:])
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        run = sliding_window_labels if labels else sliding_window_inference
        out = run(volume, roi, cfg['sw_batch_size'], softmax_ensemble(models),
                  overlap=cfg['overlap'], mode=cfg['mode'], sigma_scale=cfg['sigma_scale'],
                  progress=cfg['progress'])
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)
    return out[0]
