"""Helpers for tests and benchmarks: non-trivial norm statistics, thread control."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

__all__ = ['randomize_norms_', 'torch_threads']


@torch.no_grad()
def randomize_norms_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every norm layer's affine parameters and BatchNorm running statistics with random
    values (mean ~ N(0, 0.5), var ~ U(0.5, 2), weight ~ U(0.5, 1.5), bias ~ N(0, 0.2)), so eval
    outputs exercise the statistics instead of the identity defaults.

    Returns:
        ``model``, for chaining.
    """
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if not isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm)):
            continue
        weight, bias = getattr(module, 'weight', None), getattr(module, 'bias', None)
        if weight is not None:
            weight.copy_(torch.rand(weight.shape, generator=gen) + 0.5)
        if bias is not None:
            bias.copy_(torch.randn(bias.shape, generator=gen) * 0.2)
        if getattr(module, 'running_mean', None) is not None:
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.5)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) * 1.5
                                     + 0.5)
    return model


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads, restoring the previous setting after.

    Tests on tiny tensors use one thread: on a loaded 2-core machine OpenMP hand-offs cost more
    than the work.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
