"""Exception types shared by densekit's drop-in replacements of OpenMMLab classes.

densekit raises ``ValueError`` / ``TypeError`` that name the bad argument. Where the class it
replaces signals the same problem with another type (a bare ``assert``, or the ``RuntimeError``
of a torch op deeper down), the error also derives from that type, so the peer's own tests and
callers that catch it keep working when only the import or ``type`` is switched.
"""
from __future__ import annotations

__all__ = ['ArgumentError', 'InputSizeError', 'MissingExtra', 'positive_int']


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
