"""Dice + cross-entropy loss with nnU-Net's deep-supervision weighting.

Soft Dice follows nnU-Net: softmax probabilities, per-class ``(2 I + s) / (P + G + s)`` with
``s = 1e-5``, summed over the batch as well when ``batch_dice`` (one Dice per class per batch),
background excluded; the loss is ``1 - mean Dice`` (nnU-Net uses ``-Dice``: same gradients).
Deep supervision weights are ``1 / 2^i`` for output ``i`` (0 = finest), the coarsest set to 0,
normalised to sum 1, and the targets are nearest-downsampled to each output's size.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densekit.errors import positive_int
from densekit.registry import MODELS

__all__ = ['DiceCELoss', 'deep_supervision_weights', 'soft_dice']


def deep_supervision_weights(num_outputs: int) -> List[float]:
    """nnU-Net's weights: ``1/2^i``, the coarsest dropped, normalised.

    Example:
        >>> [round(w, 4) for w in deep_supervision_weights(4)]
        [0.5714, 0.2857, 0.1429, 0.0]
    """
    positive_int(num_outputs, 'num_outputs')
    if num_outputs == 1:
        return [1.0]
    weights = [1.0 / 2 ** i for i in range(num_outputs)]
    weights[-1] = 0.0
    total = sum(weights)
    return [w / total for w in weights]


def soft_dice(logits: Tensor, target: Tensor, smooth: float = 1e-5, batch_dice: bool = True,
              include_background: bool = False) -> Tensor:
    """Soft Dice per class of softmax(``logits``) against integer ``target``.

    Args:
        logits: ``(N, K, *spatial)``.
        target: ``(N, *spatial)`` integer labels in ``[0, K)``.
        smooth: Added to numerator and denominator.
        batch_dice: Sum over the batch (one value per class) instead of per sample.
        include_background: Keep class 0.

    Returns:
        ``(K',)`` with ``batch_dice``, else ``(N, K')``; ``K' = K - 1`` without background.
    """
    probs = logits.softmax(1)
    onehot = torch.zeros_like(probs).scatter_(1, target.unsqueeze(1).long(), 1.0)
    if not include_background:
        probs, onehot = probs[:, 1:], onehot[:, 1:]
    dims = tuple(range(2, logits.dim()))
    if batch_dice:
        dims = (0,) + dims
    intersect = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    return ((2 * intersect + smooth) / (denom + smooth).clamp_min(1e-8))


@MODELS.register_module()
class DiceCELoss(nn.Module):
    """Soft Dice + cross-entropy, over one output or a deep-supervision list of outputs.

    Args:
        dice_weight: Weight of the Dice term.
        ce_weight: Weight of the cross-entropy term.
        smooth: Dice smoothing.
        batch_dice: One Dice per class over the whole batch (nnU-Net's default for 3D).
        include_background: Count the background in the Dice term.
        ds_weights: Explicit deep-supervision weights (default: :func:`deep_supervision_weights`).

    Example:
        >>> loss = DiceCELoss()
        >>> logits = [torch.randn(2, 3, 8, 8, 8), torch.randn(2, 3, 4, 4, 4)]
        >>> out = loss(logits, torch.randint(0, 3, (2, 8, 8, 8)))
        >>> sorted(out)
        ['loss_ce', 'loss_dice']
    """

    def __init__(self, dice_weight: float = 1.0, ce_weight: float = 1.0, smooth: float = 1e-5,
                 batch_dice: bool = True, include_background: bool = False,
                 ds_weights: Optional[Sequence[float]] = None) -> None:
        super().__init__()
        self.dice_weight, self.ce_weight, self.smooth = dice_weight, ce_weight, smooth
        self.batch_dice, self.include_background = batch_dice, include_background
        self.ds_weights = list(ds_weights) if ds_weights is not None else None

    def forward(self, logits: Union[Tensor, Sequence[Tensor]], target: Tensor
                ) -> Dict[str, Tensor]:
        """Losses of ``logits`` (one ``(N, K, *spatial)`` or a list, finest first) vs ``target``.

        Returns:
            ``dict(loss_dice=..., loss_ce=...)`` (weighted sums over the outputs).
        """
        outs = [logits] if isinstance(logits, Tensor) else list(logits)
        if target.dim() != outs[0].dim() - 1:
            raise ValueError(f'target must be (N, *spatial) labels matching logits '
                             f'{tuple(outs[0].shape)}, got {tuple(target.shape)}')
        weights = self.ds_weights or deep_supervision_weights(len(outs))
        if len(weights) != len(outs):
            raise ValueError(f'ds_weights has {len(weights)} entries for {len(outs)} outputs')
        dice_total = outs[0].new_zeros(())
        ce_total = outs[0].new_zeros(())
        for w, out in zip(weights, outs):
            if w == 0:
                continue
            tgt = target
            if tuple(out.shape[2:]) != tuple(target.shape[1:]):
                tgt = F.interpolate(target[:, None].float(), size=tuple(out.shape[2:]),
                                    mode='nearest')[:, 0]
            tgt = tgt.long()
            dice = soft_dice(out, tgt, self.smooth, self.batch_dice, self.include_background)
            dice_total = dice_total + w * (1 - dice.mean())
            ce_total = ce_total + w * F.cross_entropy(out, tgt)
        return dict(loss_dice=self.dice_weight * dice_total, loss_ce=self.ce_weight * ce_total)
