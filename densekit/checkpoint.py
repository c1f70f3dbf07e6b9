"""Safe loading of mmengine checkpoints under ``torch.load(weights_only=True)``.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7 then fails to
resume its own checkpoints: they hold a few non-tensor objects (the message hub's
``HistoryBuffer`` and numpy arrays and scalars). Switching to ``weights_only=False`` would let a
checkpoint file run arbitrary code. Instead densekit allow-lists exactly the types mmengine
writes and keeps ``weights_only=True``; anything else is refused with
:class:`UnsafeCheckpointError`, which names the offending global. Nothing from a refused file
runs: the restricted unpickler rejects the global before it is ever called.

Importing this module registers :func:`load_local_checkpoint` as mmengine's loader for local
paths, so ``Runner.resume``, ``load_from`` and ``load_checkpoint`` all go through it.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
import re
from typing import Any, Callable, Optional

import numpy as np
import torch
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(pickle.UnpicklingError, ValueError):
    """A checkpoint pickles a type outside densekit's allow-list; it was not loaded."""


def _numpy_types() -> list[Any]:
    """numpy callables and classes that pickled arrays, dtypes and scalars refer to."""
    multiarray = getattr(np, '_core', None) or np.core
    found: list[Any] = [np.ndarray, np.dtype, multiarray.multiarray._reconstruct,
                        multiarray.multiarray.scalar]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:  # numpy >= 1.25 pickles dtypes by their DType class
        found += [obj for name, obj in vars(dtypes).items()
                  if name.endswith('DType') and isinstance(obj, type)]
    return found


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` during loading, limited to what mmengine pickles.

    A ``HistoryBuffer`` pickles its statistics table as ``getattr(HistoryBuffer, 'mean')`` and
    so on. A general ``getattr`` would hand a crafted file arbitrary attribute access, so only
    those lookups are served; anything else is refused.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    # the four built-in statistics, plus any registered with HistoryBuffer.register_statistics
    served = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
    if obj is HistoryBuffer and name in served:
        return getattr(HistoryBuffer, name)
    raise UnsafeCheckpointError(
        f'checkpoint asks for getattr({getattr(obj, "__name__", type(obj).__name__)}, {name!r}); '
        'only HistoryBuffer statistics methods may be looked up while loading')


def mmengine_checkpoint_types() -> list[Any]:
    """The exact set of non-tensor globals an mmengine Runner checkpoint contains."""
    from mmengine.logging.history_buffer import HistoryBuffer

    return [HistoryBuffer, *_numpy_types(), (_history_buffer_getattr, 'builtins.getattr'),
            (_history_buffer_getattr, '__builtin__.getattr')]


_ALLOWED: Optional[list[Any]] = None


def allowed_globals() -> list[Any]:
    """Cached :func:`mmengine_checkpoint_types`."""
    global _ALLOWED
    if _ALLOWED is None:
        _ALLOWED = mmengine_checkpoint_types()
    return _ALLOWED


_GLOBAL_IN_MESSAGE = re.compile(
    r'GLOBAL ([\w.]+)|Unsupported (?:class|operand|global)[:\s]+([^\s]+)')


def _offending_names(filename: str, message: str) -> list[str]:
    names: list[str] = []
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            names = list(torch.serialization.get_unsafe_globals_in_checkpoint(filename))
    except Exception:  # legacy (non-zip) format or unreadable: fall back to torch's message
        names = []
    allowed = {obj[1] if isinstance(obj, tuple) else f'{obj.__module__}.{obj.__qualname__}'
               for obj in allowed_globals()}
    names = [name for name in names if name not in allowed]
    if not names:
        names = [a or b for a, b in _GLOBAL_IN_MESSAGE.findall(message)]
    return names or ['<unknown>']


def safe_load(filename: str, map_location: Any = None) -> Any:
    """``torch.load`` with ``weights_only=True`` and mmengine's types allow-listed.

    Args:
        filename: Path to a checkpoint file.
        map_location: As for :func:`torch.load`.

    Raises:
        FileNotFoundError: If ``filename`` does not exist.
        UnsafeCheckpointError: If the file pickles anything outside the allow-list.
    """
    filename = osp.expanduser(os.fspath(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename!r} does not exist')
    with torch.serialization.safe_globals(allowed_globals()):
        try:
            return torch.load(filename, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as err:
            if isinstance(err.__context__, UnsafeCheckpointError):
                raise UnsafeCheckpointError(
                    f'refusing to load checkpoint {filename!r}: {err.__context__} Nothing from '
                    'the file was executed.') from None
            names = _offending_names(filename, str(err))
            raise UnsafeCheckpointError(
                f'refusing to load checkpoint {filename!r}: it pickles {", ".join(names)}, '
                'which is not among the types mmengine checkpoints hold (tensors, containers, '
                'numpy arrays/scalars, mmengine HistoryBuffer). Nothing from the file was '
                'executed. If you created this file yourself and trust it, re-save its tensors '
                'with torch.save(state_dict).') from None


def load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    """mmengine ``CheckpointLoader`` scheme for local paths, backed by :func:`safe_load`."""
    return safe_load(filename, map_location=map_location)


def install(loader: Callable[[str, Any], Any] = load_local_checkpoint) -> None:
    """Register ``loader`` as mmengine's loader for local checkpoint paths."""
    CheckpointLoader.register_scheme(prefixes='', loader=loader, force=True)


install()
