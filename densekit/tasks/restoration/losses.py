"""Pixel losses of the restoration task: L1 and Charbonnier (a smooth L1)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from densekit.registry import MODELS

__all__ = ['PixelL1Loss', 'CharbonnierLoss']


def _check(loss_weight: float, reduction: str) -> None:
    if reduction not in ('mean', 'sum'):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if not loss_weight >= 0:
        raise ValueError(f'loss_weight must be >= 0, got {loss_weight!r}')


@MODELS.register_module()
class PixelL1Loss(nn.Module):
    """``loss_weight * mean|pred - target|``; both ``(N, C, H, W)``."""

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean') -> None:
        super().__init__()
        _check(loss_weight, reduction)
        self.loss_weight, self.reduction = loss_weight, reduction

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:  # noqa: D102
        diff = (pred - target).abs()
        return self.loss_weight * (diff.mean() if self.reduction == 'mean' else diff.sum())


@MODELS.register_module()
class CharbonnierLoss(nn.Module):
    """``loss_weight * mean sqrt((pred - target)^2 + eps^2)``; both ``(N, C, H, W)``.

    Example:
        >>> loss = CharbonnierLoss(eps=1e-3)(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2))
        >>> round(loss.item(), 4)
        1.0
    """

    def __init__(self, loss_weight: float = 1.0, eps: float = 1e-3,
                 reduction: str = 'mean') -> None:
        super().__init__()
        _check(loss_weight, reduction)
        if not eps > 0:
            raise ValueError(f'eps must be > 0, got {eps!r}')
        self.loss_weight, self.eps, self.reduction = loss_weight, eps, reduction

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:  # noqa: D102
        value = torch.sqrt((pred - target) ** 2 + self.eps ** 2)
        return self.loss_weight * (value.mean() if self.reduction == 'mean' else value.sum())
