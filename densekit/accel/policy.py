"""The dispatcher: whether a CPU fast path may run for this call, and the user switch.

Every fast path in densekit asks :func:`use` before it runs. The answer is decided per call:

* the user switch: :func:`set_fast_paths` / :func:`fast_paths` (process wide, or for one
  block) and the ``DENSEKIT_FAST_PATHS`` environment variable (``0`` / ``false`` / ``off``
  disables every path; a comma list such as ``tap_skip,polyphase`` enables only those),
  read once at import;
* tracing, scripting, ONNX export and ``torch.compile`` (:func:`is_capturing`): the plain op,
  because the fast paths specialise on shapes (zone plans, polyphase factors) or are custom
  autograd Functions a graph capture cannot record;
* autocast on the tensors' device: the plain op (the fast paths were written and measured
  for float32; under autocast the plain op follows torch's casting rules);
* the device type and dtype of every tensor: the fast paths were measured against oneDNN on
  CPU, so they run on CPU float32 tensors only; CUDA and other devices get the plain op.

Grad mode is not part of the generic answer: each path decides its own train / inference
variant (e.g. channels-last ASPP runs only without autograd), see :data:`PATHS`.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Dict, Iterable, Iterator, Optional, Union

import torch
from torch import Tensor

__all__ = ['PATHS', 'set_fast_paths', 'fast_paths', 'fast_paths_enabled', 'is_capturing',
           'use', 'ENV_VAR']

ENV_VAR = 'DENSEKIT_FAST_PATHS'

#: Every fast path, by name, with what it does (all exact up to float rounding).
PATHS: Dict[str, str] = {
    'fold_bn': 'BatchNorm (running statistics) folded into the preceding conv / linear',
    'inplace': 'activations, residual adds and concatenations written in place without autograd',
    'tap_skip': 'zero-padded convs with most taps in the padding run on a channels-last copy, '
                'where oneDNN skips those taps (forward and backward)',
    'polyphase': 'dilated depthwise convs on polyphase components (channels-last)',
    'channels_last': 'ASPP / JPU / conv weights run in channels-last memory order',
    'aspp_pool_bias': "ASPP's image-pool branch as a per-sample bias of the bottleneck conv",
    'fpn_add': "FPN's nearest upsample + add as one broadcast add on a blocked view",
    'volumetric': '3D convs on oneDNN with channels-last activations, stride = kernel transposed '
                  'convs as a matmul, two-pass instance-norm statistics (medical inference)',
}

_FALSE = ('0', 'false', 'off', 'no', 'none')
_TRUE = ('1', 'true', 'on', 'yes', 'all', '')


def _parse_env(value: Optional[str]) -> Dict[str, bool]:
    if value is None or value.strip().lower() in _TRUE:
        return {name: True for name in PATHS}
    if value.strip().lower() in _FALSE:
        return {name: False for name in PATHS}
    names = [v.strip() for v in value.split(',') if v.strip()]
    unknown = [n for n in names if n not in PATHS]
    if unknown:
        raise ValueError(f'{ENV_VAR}={value!r} names unknown fast paths {unknown}; expected '
                         f'0/1 or a comma list of {sorted(PATHS)}')
    return {name: name in names for name in PATHS}


_DEFAULT = _parse_env(os.environ.get(ENV_VAR))
_LOCAL = threading.local()


def _state() -> Dict[str, bool]:
    state = getattr(_LOCAL, 'state', None)
    return _DEFAULT if state is None else state


def _resolve(paths: Union[None, str, Iterable[str]]) -> Iterable[str]:
    if paths is None:
        return tuple(PATHS)
    names = (paths,) if isinstance(paths, str) else tuple(paths)
    unknown = [n for n in names if n not in PATHS]
    if unknown:
        raise ValueError(f'paths={names!r} names unknown fast paths {unknown}; expected names '
                         f'from {sorted(PATHS)}')
    return names


def set_fast_paths(enabled: bool, paths: Union[None, str, Iterable[str]] = None) -> None:
    """Turn densekit's fast paths on or off, process wide (every thread without its own
    :func:`fast_paths` block).

    Args:
        enabled: True to allow, False to force the plain PyTorch ops.
        paths: One name or several from :data:`PATHS`; None means all of them.

    Raises:
        TypeError: ``enabled`` is not a bool.
        ValueError: an unknown path name.

    Example:
        >>> set_fast_paths(False)      # everything plain
        >>> set_fast_paths(True)
    """
    if not isinstance(enabled, bool):
        raise TypeError(f'enabled must be a bool, got {enabled!r}')
    for name in _resolve(paths):
        _DEFAULT[name] = enabled


@contextlib.contextmanager
def fast_paths(enabled: bool, paths: Union[None, str, Iterable[str]] = None) -> Iterator[None]:
    """Context manager form of :func:`set_fast_paths`, for the current thread only.

    Example:
        >>> with fast_paths(False):
        ...     pass  # every densekit module runs the plain ops here
    """
    if not isinstance(enabled, bool):
        raise TypeError(f'enabled must be a bool, got {enabled!r}')
    names = _resolve(paths)
    previous = getattr(_LOCAL, 'state', None)
    state = dict(_state())
    for name in names:
        state[name] = enabled
    _LOCAL.state = state
    try:
        yield
    finally:
        _LOCAL.state = previous


def fast_paths_enabled(path: Optional[str] = None) -> bool:
    """Whether the switch allows ``path`` (None: whether it allows any path)."""
    state = _state()
    if path is None:
        return any(state.values())
    return state[next(iter(_resolve(path)))]


def is_capturing() -> bool:
    """Whether the call is being recorded: ``torch.jit`` tracing or scripting, ONNX export or
    ``torch.compile`` (dynamo)."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    if torch.onnx.is_in_onnx_export():
        return True
    compiler = getattr(torch, 'compiler', None)
    return bool(compiler is not None and compiler.is_compiling())


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except (TypeError, RuntimeError):  # a device type autocast does not know
        return False


def use(path: str, *tensors: Optional[Tensor]) -> bool:
    """Whether fast path ``path`` may run on ``tensors`` now (see the module docstring).

    Args:
        path: A name from :data:`PATHS`.
        *tensors: The tensors the path would read (inputs, weights); None entries are skipped.

    Returns:
        True only with the switch on, outside tracing / export / compile, without autocast
        on the tensors' device, and when every tensor is a CPU float32 tensor.
    """
    state = _state()
    if path not in state:
        raise ValueError(f'unknown fast path {path!r}; expected one of {sorted(PATHS)}')
    if not state[path]:
        return False
    if is_capturing():
        return False
    for t in tensors:
        if t is None:
            continue
        if t.device.type != 'cpu' or t.dtype != torch.float32:
            return False
    return not _autocast_on('cpu')
