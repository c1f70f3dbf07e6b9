"""Exception types shared by densekit's drop-in replacements of OpenMMLab classes.

densekit raises ``ValueError`` / ``TypeError`` that name the bad argument. Where the class it
replaces signals the same problem with another type (a bare ``assert``, or the ``RuntimeError``
of a torch op deeper down), the error also derives from that type, so the peer's own tests and
callers that catch it keep working when only the import or ``type`` is switched.
"""
from __future__ import annotations

from typing import List

__all__ = ['ArgumentError', 'InputSizeError', 'MissingExtra', 'positive_int', 'positive_ints']


class ArgumentError(ValueError, AssertionError):
    """A bad constructor argument, where the peer class has a bare ``assert``.

    Example:
        >>> isinstance(ArgumentError('branch_channels must ...'), AssertionError)
        True
    """


class InputSizeError(ValueError, RuntimeError):
    """An input too small for the module, where the peer fails inside a torch op with a
    ``RuntimeError``."""


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message says which extra installs it."""


def positive_int(value: object, name: str) -> int:
    """``value`` if it is a positive int (not a bool), else an :class:`ArgumentError` naming
    ``name`` and the value.

    Example:
        >>> positive_int(3, 'channels')
        3
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ArgumentError(f'{name} must be a positive int, got {value!r}')
    return value


def positive_ints(value: object, name: str) -> List[int]:
    """``value`` as a list if it is a non-empty list or tuple of positive ints (not bools), else
    an :class:`ArgumentError` naming ``name`` and the value.

    Example:
        >>> positive_ints((2, 2, 6), 'depths')
        [2, 2, 6]
    """
    if not isinstance(value, (list, tuple)) or not value or any(
            not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in value):
        raise ArgumentError(f'{name} must be a non-empty sequence of positive ints, got {value!r}')
    return list(value)
