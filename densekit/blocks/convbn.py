"""Train / tune / deploy modes of conv + BatchNorm pairs ("Efficient ConvBN Blocks").

:func:`set_convbn_mode` switches every :class:`~densekit.layers.ConvNormAct` with a BatchNorm
(and every ``conv`` directly followed by a BatchNorm inside an ``nn.Sequential``) of a model:

* ``'train'`` - ordinary BatchNorm: batch statistics in ``model.train()``, running statistics
  in ``model.eval()``;
* ``'tune'`` - the BN stays in eval mode whatever ``model.train()`` says (its ``train``
  method is replaced on the instance) (frozen running
  statistics, affine parameters still trainable). A ``ConvNormAct`` then folds it into the conv
  weight on the fly (:func:`densekit.layers.fold_conv_bn`, differentiable), so no BN
  activation is stored for backward: one conv output instead of two. Sequential pairs get the
  frozen statistics but not the folding;
* ``'deploy'`` - the BN is fused into the conv for good (:func:`densekit.layers.fuse_conv_bn`
  / :meth:`ConvNormAct.fuse`) and removed; the model is put in eval mode. This cannot be
  undone.

All three compute the same function in eval mode.
"""
from __future__ import annotations

import types
from typing import List, Tuple

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from densekit.layers import ConvNormAct, fuse_conv_bn

__all__ = ['set_convbn_mode', 'CONVBN_MODES']

CONVBN_MODES = ('train', 'tune', 'deploy')


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    """``train()`` of a BatchNorm in tune mode: it stays in eval mode."""
    return nn.Module.train(self, False)


def _set_tune(norms: List[_BatchNorm], enabled: bool, training: bool) -> None:
    """Freeze (``enabled``) or release the BNs; released ones follow ``training``."""
    for norm in norms:
        if 'train' in norm.__dict__:
            del norm.train
            norm.train(training)
        if enabled:
            norm.train = types.MethodType(_stay_in_eval, norm)
            norm.train()


def _sequential_pairs(model: nn.Module) -> List[Tuple[nn.Sequential, int]]:
    pairs = []
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            children = list(module)
            for i in range(len(children) - 1):
                if (type(children[i]) in (nn.Conv2d, nn.Conv3d)
                        and isinstance(children[i + 1], _BatchNorm)):
                    pairs.append((module, i))
    return pairs


def set_convbn_mode(model: nn.Module, mode: str) -> nn.Module:
    """Put every conv + BatchNorm pair of ``model`` in ``mode`` (train / tune / deploy).

    Args:
        model: Any module; ``ConvNormAct`` units and ``nn.Sequential`` conv->BN pairs are
            switched, everything else is left alone.
        mode: ``'train'``, ``'tune'`` or ``'deploy'`` (see the module docstring).

    Returns:
        ``model`` (in eval mode after ``'deploy'``).

    Raises:
        ValueError: unknown ``mode``.

    Example:
        >>> net = nn.Sequential(ConvNormAct(2, 3, 4, 3, norm_cfg=dict(type='BN')))
        >>> _ = set_convbn_mode(net, 'tune').train()
        >>> net[0].bn.training
        False
    """
    if mode not in CONVBN_MODES:
        raise ValueError(f'mode must be one of {CONVBN_MODES}, got {mode!r}')
    units = [m for m in model.modules()
             if isinstance(m, ConvNormAct) and isinstance(m.norm, _BatchNorm)]
    pairs = _sequential_pairs(model)
    if mode == 'deploy':
        model.eval()
        for unit in units:
            _set_tune([unit.norm], False, False)
            unit.fuse()
        for seq, i in reversed(pairs):
            _set_tune([seq[i + 1]], False, False)
            seq[i] = fuse_conv_bn(seq[i], seq[i + 1].eval())
            seq[i + 1] = nn.Identity()
        return model
    norms = [unit.norm for unit in units] + [seq[i + 1] for seq, i in pairs]
    _set_tune(norms, mode == 'tune', model.training)
    return model
