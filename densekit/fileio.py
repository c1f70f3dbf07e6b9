"""Atomic file output shared by checkpoints, predictions and pictures.

A write goes to a temporary file in the destination's directory, is flushed and fsync'ed, and
then renamed over the destination with :func:`os.replace`. A process killed mid-write leaves
either the old file or the new one, never a truncated file, and at worst a stray ``*.tmp-*``.

Importing this module also swaps mmengine's ``local`` file backend for :class:`AtomicLocalBackend`,
so the checkpoints and ``last_checkpoint`` pointers the Runner writes are atomic too.
"""
from __future__ import annotations

import contextlib
import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import IO, Iterator, Union

from mmengine.fileio import LocalBackend, register_backend

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = 'wb', *, encoding: str | None = None) -> Iterator[IO]:
    """Open ``path`` for writing so that it appears complete or not at all.

    Args:
        path: Destination file. Its parent directory is created if missing.
        mode: ``'wb'`` or ``'w'``.
        encoding: Text encoding for ``mode='w'``.

    Raises:
        ValueError: If ``mode`` is not a plain write mode.
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.tmp-', dir=path.parent)
    # mkstemp creates 0600 files; give the output the permissions open() would have
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(data: bytes, path: PathLike) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, 'wb') as handle:
        handle.write(data)


def atomic_write_text(text: str, path: PathLike, encoding: str = 'utf-8') -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, 'w', encoding=encoding) as handle:
        handle.write(text)


def refuse_overwrite(output: PathLike, inputs: list[PathLike]) -> None:
    """Raise ``ValueError`` if ``output`` is the same file as any of ``inputs``."""
    out = osp.realpath(output)
    for item in inputs:
        if osp.realpath(item) == out:
            raise ValueError(f'output path {str(output)!r} is the input file {str(item)!r}; '
                             'densekit never overwrites its inputs: choose another --out')


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put`` and ``put_text``."""

    def put(self, obj: bytes, filepath: PathLike) -> None:  # noqa: D102
        atomic_write_bytes(obj, filepath)

    def put_text(self, obj: str, filepath: PathLike, encoding: str = 'utf-8') -> None:  # noqa: D102
        atomic_write_text(obj, filepath, encoding=encoding)


register_backend('local', AtomicLocalBackend, force=True, prefixes='')
