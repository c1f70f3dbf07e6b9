"""Data preprocessor of the restoration task: batch, scale to [0, 1], normalise.

Inputs arrive as float ``(C, H, W)`` tensors holding stored pixel values (0..255 for 8-bit,
0..65535 for 16-bit). They are stacked, divided by the value range (``value_range`` or each
sample's ``max_value``) and normalised with ``mean``/``std`` given in [0, 1] units (EDSR's
"mean shift" is ``mean=DIV2K_MEAN``). Targets ``gt_img`` are scaled to [0, 1] but not
normalised: losses and metrics compare images.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor
from torch import Tensor

from densekit.registry import MODELS

__all__ = ['RestorationPreprocessor']


@MODELS.register_module()
class RestorationPreprocessor(BaseDataPreprocessor):
    """Stack, scale and normalise restoration batches.

    Args:
        mean: Per-channel mean in [0, 1] units subtracted from inputs.
        std: Per-channel std in [0, 1] units.
        value_range: Peak stored value (255, 65535); ``None`` reads each sample's
            ``max_value`` metainfo (default 255).

    Shape:
        ``inputs``: list of ``(C, H, W)`` -> ``(N, C, H, W)`` (equal sizes required).
    """

    def __init__(self, mean: Sequence[float] = (0.0, 0.0, 0.0),
                 std: Sequence[float] = (1.0, 1.0, 1.0), value_range: Optional[float] = None,
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking)
        if len(mean) != len(std) or not len(mean):
            raise ValueError(f'mean and std must have the same non-zero length, got {mean!r} '
                             f'and {std!r}')
        if any(s <= 0 for s in std):
            raise ValueError(f'std values must be > 0, got {std!r}')
        if value_range is not None and not value_range > 0:
            raise ValueError(f'value_range must be > 0 or None, got {value_range!r}')
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)
        self.value_range = value_range

    def normalize(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` in [0, 1] -> normalised (``(x - mean) / std``)."""
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def denormalize(self, x: Tensor) -> Tensor:
        """Inverse of :meth:`normalize`."""
        return x * self.std.to(x.dtype) + self.mean.to(x.dtype)

    def _peak(self, sample: Any) -> float:
        if self.value_range is not None:
            return float(self.value_range)
        return float(sample.metainfo.get('max_value', 255.0)) if sample is not None else 255.0

    def forward(self, data: dict, training: bool = False) -> dict:  # noqa: D102
        data = self.cast_data(data)
        inputs = data['inputs']
        samples = data.get('data_samples')
        if isinstance(inputs, Tensor) and inputs.dim() == 3:
            inputs = [inputs]
        shapes = {tuple(t.shape) for t in inputs}
        if len(shapes) > 1:
            raise ValueError(f'inputs of one batch must have the same shape, got {sorted(shapes)};'
                             ' use batch_size=1 for images of different sizes')
        batch = torch.stack(list(inputs)).float()
        peaks = [self._peak(samples[i] if samples else None) for i in range(len(batch))]
        batch = batch / batch.new_tensor(peaks).view(-1, 1, 1, 1)
        if samples:
            for sample, peak in zip(samples, peaks):
                if 'gt_img' in sample:
                    sample.gt_img = sample.gt_img.float() / peak
        return dict(inputs=self.normalize(batch), data_samples=samples)
