"""How many windows of a window batch go into one network call (``micro_batch='auto'``).

On a CPU, whether a batch of large 3D windows runs faster per window than the same windows one
by one depends on the machine and its load: on an idle machine single 64^3 windows were ~1.3x
faster per window, on a machine whose cores are shared with other jobs the batched call won
(fewer thread synchronisations). Splitting a window batch is only the same computation when the
predictor treats the samples of a batch independently and keeps no state between calls, so
densekit splits automatically only where it can show that (:func:`independent_samples`): every
module of the predictor is a stock torch layer known to be per-sample (exact type, in eval mode,
BatchNorm only with running statistics) or a densekit class that declares so itself. Anything
else (a user's module, a stateful callable, a ``BatchNorm(track_running_stats=False)``) runs the
window batches whole, as MONAI does, unless the caller opts in (``micro_batch='measure'`` or an
int). Where splitting is allowed, densekit measures instead of guessing: after one warm-up of
each, it alternates full and split window batches twice, and keeps the faster per window for
the rest of the run.
"""
from __future__ import annotations

import statistics
from typing import Callable, Dict, Iterator, List, Optional

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ['CallPlanner', 'independent_samples', 'PER_SAMPLE_ATTR', 'UNUSED_CHILDREN_ATTR']

#: Class attribute (set on the class itself, not inherited) by which a densekit module whose
#: eval-mode forward treats batch samples independently and keeps no state declares so.
PER_SAMPLE_ATTR = 'per_sample_eval'
#: Class attribute of such a module naming children its inference never runs (e.g. a
#: segmentor's loss and data preprocessor); the check skips them.
UNUSED_CHILDREN_ATTR = 'per_sample_unused'

# Stock torch layers whose eval-mode output for one sample does not depend on the others.
_PER_SAMPLE_TYPES = frozenset({
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
    nn.ConvTranspose3d, nn.Linear, nn.Identity, nn.Flatten, nn.Unflatten,
    nn.Sequential, nn.ModuleList, nn.ModuleDict,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Softmax, nn.LogSoftmax,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Upsample, nn.PixelShuffle,
    nn.PixelUnshuffle, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
    nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d, nn.ReflectionPad1d,
    nn.ReflectionPad2d, nn.ReflectionPad3d,
})
_BATCH_NORMS = frozenset({nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d})


def _inference_modules(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` and its descendants, less the children a declaring class says its inference
    never runs."""
    yield module
    kind = type(module)
    unused = kind.__dict__.get(UNUSED_CHILDREN_ATTR, ()) \
        if kind.__dict__.get(PER_SAMPLE_ATTR, False) is True else ()
    for name, child in module.named_children():
        if name not in unused:
            yield from _inference_modules(child)


def _module_is_per_sample(module: nn.Module) -> bool:
    if module.training:
        return False
    kind = type(module)
    if kind in _BATCH_NORMS:  # eval BatchNorm is per-sample only with running statistics
        return isinstance(module, _BatchNorm) and module.running_mean is not None
    return kind in _PER_SAMPLE_TYPES or kind.__dict__.get(PER_SAMPLE_ATTR, False) is True


def independent_samples(predictor: Callable) -> bool:
    """Whether splitting a batch into smaller calls of ``predictor`` provably gives the same
    result: ``predictor`` is an ``nn.Module`` (or a method of one; a densekit class that
    declares itself per-sample vouches for its methods too) and every module in it that
    inference runs, itself included, is per-sample in its current (eval) mode, by the rules
    of the module docstring.

    Example:
        >>> independent_samples(nn.Sequential(nn.Conv3d(1, 2, 3), nn.ReLU()).eval())
        True
        >>> independent_samples(nn.BatchNorm3d(2, track_running_stats=False).eval())
        False
    """
    owner = predictor if isinstance(predictor, nn.Module) else getattr(predictor, '__self__',
                                                                        None)
    if not isinstance(owner, nn.Module):
        return False  # a function or another object: its state is unknown
    return all(_module_is_per_sample(m) for m in _inference_modules(owner))

# batch index -> True (split into single windows) / False (one call), then decide
_PROBES = (False, True, False, True, False, True)
_WARMUP = 2


class CallPlanner:
    """Windows per predictor call, for each window batch of a run.

    Args:
        sw_batch_size: Windows per window batch.
        micro_batch: Fixed windows per call, or None.
        adaptive: Measure full vs single-window calls (only meaningful when the predictor
            treats samples independently).

    Example:
        >>> planner = CallPlanner(4, None, adaptive=False)
        >>> planner.step(0)
        4
    """

    def __init__(self, sw_batch_size: int, micro_batch: Optional[int], adaptive: bool) -> None:
        if micro_batch is not None and (not isinstance(micro_batch, int) or
                                        isinstance(micro_batch, bool) or micro_batch < 1):
            raise ValueError(f"micro_batch must be a positive int, None, 'auto' or 'measure', got "
                             f'{micro_batch!r}')
        self.full = sw_batch_size
        self.fixed = micro_batch
        self.adaptive = adaptive and micro_batch is None and sw_batch_size > 1
        self.times: Dict[bool, List[float]] = {False: [], True: []}
        self.choice: Optional[bool] = None

    def step(self, index: int) -> int:
        """Windows per call for window batch ``index``."""
        if self.fixed is not None:
            return self.fixed
        if not self.adaptive:
            return self.full
        split = _PROBES[index] if index < len(_PROBES) else bool(self.choice)
        return 1 if split else self.full

    def record(self, index: int, seconds: float, windows: int) -> None:
        """Report the wall time of window batch ``index`` (``windows`` windows)."""
        if not self.adaptive or index >= len(_PROBES) or windows != self.full:
            return
        if index >= _WARMUP:
            self.times[_PROBES[index]].append(seconds / windows)
        if index == len(_PROBES) - 1 and self.times[True] and self.times[False]:
            self.choice = statistics.median(self.times[True]) < \
                statistics.median(self.times[False])
