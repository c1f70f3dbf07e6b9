"""Test helpers: tolerances justified by a float64 reference, float64 copies, thread control,
and (from the benchmark harness, which needs it too) non-trivial norm statistics."""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from benchmarks.harness import randomize_norms_
from densekit.threads import torch_threads

__all__ = ['randomize_norms_', 'torch_threads', 'assert_close_to_reference', 'float64_copy',
           'REFERENCE_FACTOR', 'REFERENCE_ULPS']

#: densekit's error against the float64 reference may be this many times torch's own error.
REFERENCE_FACTOR = 4.0
#: ...plus this many float32 ulps of the reference's largest magnitude (covers results that
#: torch happens to get exactly right, e.g. a sum of few exactly representable terms).
REFERENCE_ULPS = 16.0


def float64_copy(obj: Any) -> Any:
    """A float64 copy of a tensor (detached, ``requires_grad`` kept), of a module (deep copy),
    or of a list / tuple / dict of them; anything else is returned as is."""
    import copy

    if isinstance(obj, Tensor):
        if not obj.is_floating_point():
            return obj
        out = obj.detach().to(torch.float64, memory_format=torch.contiguous_format)
        return out.requires_grad_(obj.requires_grad)
    if isinstance(obj, nn.Module):
        return copy.deepcopy(obj).double()
    if isinstance(obj, (list, tuple)):
        return type(obj)(float64_copy(o) for o in obj)
    if isinstance(obj, dict):
        return {k: float64_copy(v) for k, v in obj.items()}
    return obj


def _flat(x: Union[Tensor, Sequence[Tensor]]) -> Sequence[Tensor]:
    return [x] if isinstance(x, Tensor) else list(x)


def assert_close_to_reference(actual: Union[Tensor, Sequence[Tensor]],
                              plain: Union[Tensor, Sequence[Tensor]],
                              reference: Union[Tensor, Sequence[Tensor]], *,
                              factor: float = REFERENCE_FACTOR, ulps: float = REFERENCE_ULPS,
                              scale: Optional[float] = None, terms: Optional[int] = None,
                              what: str = 'result') -> None:
    """Check densekit's result against a float64 reference, with torch's own error as the scale.

    ``max|actual - reference| <= factor * max|plain - reference| + ulps * eps * max|reference|``
    per tensor (with ``terms`` the floor is ``max(ulps, sqrt(terms)) * eps * max|reference|``),
    where ``plain`` is the same quantity from the plain PyTorch op (the peer) in the same dtype
    and ``eps`` is that dtype's machine epsilon. This holds on every CPU: whatever
    kernels (AVX2, AVX-512, oneDNN or ATen) the machine picks, both results are measured by the
    same yardstick, so no absolute tolerance tuned on one CPU is needed.

    Args:
        actual: densekit's result (a tensor or a sequence of tensors).
        plain: The plain op's result, same structure.
        reference: The float64 result, same structure.
        factor: Allowed ratio of densekit's error to torch's.
        ulps: Floor, in ulps of the largest reference magnitude.
        scale: The magnitude the floor is measured in instead (e.g. the largest of a set of
            gradients, for a gradient that is zero in exact arithmetic, such as the bias of a
            conv followed by a training BatchNorm).
        terms: Length of the reduction behind each value (e.g. ``N * H * W`` for a conv weight
            gradient). Rounding errors of an ``n``-term float sum grow like ``sqrt(n) * eps``
            (random-walk bound), whatever order a kernel sums in: the floor then covers any
            summation order, including one less lucky than torch's on this CPU.
        what: Name used in the failure message.

    Raises:
        AssertionError: a tensor misses the bound (the message gives both errors).
        ValueError: the structures or shapes differ.
    """
    actual, plain, reference = _flat(actual), _flat(plain), _flat(reference)
    if not len(actual) == len(plain) == len(reference):
        raise ValueError(f'{what}: got {len(actual)} actual, {len(plain)} plain and '
                         f'{len(reference)} reference tensors; expected the same number')
    for i, (a, p, r) in enumerate(zip(actual, plain, reference)):
        if a.shape != r.shape or p.shape != r.shape:
            raise ValueError(f'{what}[{i}]: shapes {tuple(a.shape)} (actual), '
                             f'{tuple(p.shape)} (plain), {tuple(r.shape)} (reference) differ')
        r = r.detach().double()
        err = (a.detach().double() - r).abs().max().item() if r.numel() else 0.0
        base = (p.detach().double() - r).abs().max().item() if r.numel() else 0.0
        size = scale if scale is not None else (r.abs().max().item() if r.numel() else 0.0)
        eps = torch.finfo(a.dtype).eps if a.is_floating_point() else 0.0
        floor = max(ulps, math.sqrt(terms)) if terms else ulps
        bound = factor * base + floor * eps * size
        if not err <= bound:  # also catches NaN
            raise AssertionError(
                f'{what}[{i}]: densekit is off the float64 reference by {err:.3g}, the plain '
                f'op by {base:.3g}; allowed {factor:g} x {base:.3g} + {floor:.3g} ulps of '
                f'{size:.3g} = {bound:.3g}')




