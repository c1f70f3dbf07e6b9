"""Safe loading of mmengine checkpoints under ``torch.load(weights_only=True)``.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7 then fails to
resume its own checkpoints: they hold a few non-tensor objects (the message hub's
``HistoryBuffer`` and numpy arrays and scalars). Switching to ``weights_only=False`` would let a
checkpoint file run arbitrary code. Instead densekit allow-lists exactly the types mmengine
writes and keeps ``weights_only=True``; anything else is refused with
:class:`UnsafeCheckpointError`, which names the offending global. Nothing from a refused file
runs: the restricted unpickler rejects the global before it is ever called.

Files that are not checkpoints at all (empty, text, a config passed by mistake, a truncated
zip) raise :class:`NotACheckpointError`, which says what the file is instead.
:func:`load_weights` loads a model strictly: a missing, unexpected or wrongly shaped key is a
:class:`CheckpointMismatchError` that lists the keys and names both files.

Importing this module registers :func:`load_local_checkpoint` as mmengine's loader for local
paths, so ``Runner.resume``, ``load_from`` and ``load_checkpoint`` all go through it.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
import re
import warnings
import zipfile
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(pickle.UnpicklingError, ValueError):
    """A checkpoint pickles a type outside densekit's allow-list; it was not loaded."""


class NotACheckpointError(ValueError):
    """The file is not a PyTorch checkpoint (empty, text, truncated, another format)."""


class CheckpointMismatchError(ValueError):
    """A checkpoint's weights do not fit the model (missing, unexpected or reshaped keys)."""


_PYTHON_HINTS = (b'_base_', b'dict(', b'import ', b'model =', b'model=', b'def ', b'# ')


def _not_a_checkpoint(filename: str, what: str) -> NotACheckpointError:
    return NotACheckpointError(f'{filename!r} is not a PyTorch checkpoint: {what}')


def sniff_checkpoint(filename: str) -> None:
    """Refuse a file that cannot be a PyTorch checkpoint, saying what it looks like instead.

    Raises:
        NotACheckpointError: The file is empty, text (Python source such as a config, or
            other text), a truncated or foreign zip archive, or of no known checkpoint format.
    """
    size = osp.getsize(filename)
    if size == 0:
        raise _not_a_checkpoint(filename, 'the file is empty (0 bytes)')
    with open(filename, 'rb') as handle:
        head = handle.read(4096)
    if head.startswith(b'PK\x03\x04'):
        if not zipfile.is_zipfile(filename):
            raise _not_a_checkpoint(
                filename, f'a truncated or damaged zip archive ({size} bytes): the file was '
                'probably cut off while being written or copied')
        with zipfile.ZipFile(filename) as archive:
            names = archive.namelist()
        if not any(name.endswith('data.pkl') for name in names):
            raise _not_a_checkpoint(filename, f'a zip archive without data.pkl (holds '
                                    f'{", ".join(names[:3])}{"..." if len(names) > 3 else ""})')
        return
    if head[:1] == b'\x80':  # a (legacy-format) pickle
        return
    if b'\x00' not in head:
        try:
            text = head.decode('utf-8')
        except UnicodeDecodeError:
            text = None
        if text is not None:
            if filename.endswith('.py') or any(hint in head for hint in _PYTHON_HINTS):
                raise _not_a_checkpoint(
                    filename, 'it is a Python source file (a config?); pass the .pth file '
                    'that training wrote as the checkpoint')
            first = text.strip().splitlines()[0][:60] if text.strip() else ''
            raise _not_a_checkpoint(filename, f'it is a text file (starts with {first!r})')
    raise _not_a_checkpoint(filename, f'unknown file format (starts with bytes {head[:8]!r})')


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
    sniff_checkpoint(filename)
    with torch.serialization.safe_globals(allowed_globals()):
        try:
            return torch.load(filename, map_location=map_location, weights_only=True)
        except EOFError:
            raise _not_a_checkpoint(filename, 'the file ends early (truncated)') from None
        except RuntimeError as err:
            if 'PytorchStreamReader' in str(err) or 'zip' in str(err).lower():
                raise _not_a_checkpoint(filename, f'a damaged checkpoint archive ({err})') from None
            raise
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


def state_dict_of(checkpoint: Any, filename: str = '<checkpoint>') -> Dict[str, Any]:
    """The model weights in a loaded checkpoint: its ``state_dict``, or the dict itself.

    A leading ``module.`` (from a DDP-wrapped model) is stripped, as mmengine does.

    Raises:
        NotACheckpointError: If the file holds no dict of tensors.
    """
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not any(
            isinstance(value, torch.Tensor) for value in state.values()):
        raise _not_a_checkpoint(filename, 'it holds no state dict (a dict of tensors, or one '
                                "under 'state_dict')")
    return {re.sub(r'^module\.', '', key): value for key, value in state.items()}


def _listing(keys: List[str], limit: int = 10) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (f' ... and {len(keys) - limit} more' if len(keys) > limit else '')


def compare_state_dict(model: torch.nn.Module, state: Dict[str, Any]
                       ) -> Tuple[List[str], List[str], List[str]]:
    """Missing keys, unexpected keys and shape mismatches (``'key: ckpt (a) vs model (b)'``)."""
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    reshaped = [f'{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(value.shape)}'
                for key, value in own.items()
                if key in state and tuple(state[key].shape) != tuple(value.shape)]
    return missing, unexpected, reshaped


def mismatch_report(missing: List[str], unexpected: List[str], reshaped: List[str]) -> str:
    """One line per kind of mismatch, each with the first 10 keys and a count."""
    parts = []
    for name, keys in (('missing from the checkpoint', missing),
                       ('unexpected (not in the model)', unexpected),
                       ('with a different shape', reshaped)):
        if keys:
            parts.append(f'{len(keys)} key(s) {name}: {_listing(keys)}')
    return '; '.join(parts)


def check_fit(model: torch.nn.Module, filename: str, *, strict: bool = True,
              config: Optional[str] = None, action: str = 'load') -> Any:
    """Load ``filename`` and check that its weights fit ``model`` exactly.

    Args:
        model: The model (a DDP/mmengine wrapper is unwrapped).
        filename: Checkpoint path (read with :func:`safe_load`).
        strict: Raise on any missing, unexpected or reshaped key; otherwise print the same
            list as a warning.
        config: The config file the model came from, named in the message.
        action: What is being done with the checkpoint (``'load'``, ``'resume from'``).

    Returns:
        The loaded checkpoint object.

    Raises:
        CheckpointMismatchError: ``strict`` and the weights do not fit the model.
        NotACheckpointError, UnsafeCheckpointError, FileNotFoundError: see :func:`safe_load`.
    """
    target = getattr(model, 'module', model)
    checkpoint = safe_load(filename, map_location='cpu')
    problems = compare_state_dict(target, state_dict_of(checkpoint, filename))
    if any(problems):
        report = (f'cannot {action} checkpoint {filename!r}: it does not fit the model of '
                  f'config {config or "<given>"!r}: {mismatch_report(*problems)}')
        if strict:
            raise CheckpointMismatchError(report + ' (pass --no-strict / strict=False to load '
                                          'the matching keys anyway)')
        warnings.warn(report, stacklevel=2)
        print(f'warning: {report}; loading the matching keys only')
    return checkpoint


def load_weights(model: torch.nn.Module, filename: str, *, strict: bool = True,
                 config: Optional[str] = None) -> Any:
    """Load the weights in ``filename`` into ``model``, strictly unless told otherwise.

    With ``strict=False`` the keys that fit are loaded and the others listed (see
    :func:`check_fit`, which also gives the errors raised).

    Returns:
        The loaded checkpoint object (for its ``meta``).
    """
    target = getattr(model, 'module', model)
    checkpoint = check_fit(target, filename, strict=strict, config=config)
    state = state_dict_of(checkpoint, filename)
    own = target.state_dict()
    target.load_state_dict({key: value for key, value in state.items()
                            if key in own and tuple(own[key].shape) == tuple(value.shape)},
                           strict=False)
    return checkpoint


def load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    """mmengine ``CheckpointLoader`` scheme for local paths, backed by :func:`safe_load`."""
    return safe_load(filename, map_location=map_location)


def install(loader: Callable[[str, Any], Any] = load_local_checkpoint) -> None:
    """Register ``loader`` as mmengine's loader for local checkpoint paths."""
    CheckpointLoader.register_scheme(prefixes='', loader=loader, force=True)


install()
