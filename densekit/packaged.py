"""The configs that ship with densekit, and the ``densekit::<task>/<file>.py`` names for them.

densekit's configs are package data: a wheel installs the checkout's ``configs/`` folder as
``densekit/configs``. Every command and function that takes a config also accepts a packaged
config by name, the way mim's ``mmseg::`` prefix names mmseg's configs::

    densekit train densekit::segmentation/fpn_r18-tiny_1xb8-2000i_shapes-128x128.py

:func:`config_root` finds the folder: the ``configs/`` of the source checkout the package is
imported from (editable installs and ``PYTHONPATH`` runs), else the installed package data.
Nothing here depends on the working directory.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path, PurePosixPath
from typing import List, Union

__all__ = ['PREFIX', 'config_root', 'resolve_config', 'list_configs', 'is_packaged_name']

PREFIX = 'densekit::'
_PACKAGE_DIR = Path(__file__).resolve().parent


def config_root() -> Path:
    """The folder that holds densekit's configs (``segmentation/``, ``_base_/``, ...).

    Raises:
        FileNotFoundError: Neither a source checkout's ``configs/`` nor the installed package
            data is there (a broken install).
    """
    checkout = _PACKAGE_DIR.parent
    candidates = []
    if (checkout / 'pyproject.toml').is_file():
        candidates.append(checkout / 'configs')
    candidates.append(_PACKAGE_DIR / 'configs')
    for folder in candidates:
        if (folder / '_base_').is_dir():
            return folder
    raise FileNotFoundError('densekit cannot find its configs: looked in '
                            + ' and '.join(map(str, candidates))
                            + '; reinstall densekit (pip install densekit)')


def is_packaged_name(config: object) -> bool:
    """Whether ``config`` is a ``densekit::`` name."""
    return isinstance(config, str) and config.startswith(PREFIX)


def list_configs(task: str = '') -> List[str]:
    """The packaged configs as ``densekit::`` names, sorted; ``task`` keeps one folder."""
    root = config_root()
    names = []
    for path in sorted(root.rglob('*.py')):
        rel = path.relative_to(root).as_posix()
        if rel.startswith('_base_/') or '/' not in rel:
            continue
        if task and not rel.startswith(task.rstrip('/') + '/'):
            continue
        names.append(PREFIX + rel)
    return names


def resolve_config(config: Union[str, os.PathLike]) -> str:
    """The file path of ``config``: a ``densekit::<task>/<file>.py`` name becomes the packaged
    file; any other path is returned as it is.

    Raises:
        ValueError: The name is empty, absolute or climbs out of the configs folder.
        FileNotFoundError: No packaged config has that name (the message lists close names).
    """
    path = os.fspath(config)
    if not is_packaged_name(path):
        return path
    rel = path[len(PREFIX):]
    parts = PurePosixPath(rel).parts
    if not rel or rel.startswith('/') or '..' in parts or '\\' in rel:
        raise ValueError(f'config {path!r}: expected densekit::<task>/<file>.py, a path inside '
                         "densekit's configs folder")
    if not rel.endswith('.py'):
        rel += '.py'
    root = config_root()
    target = root.joinpath(*PurePosixPath(rel).parts)
    if target.is_file():
        return str(target)
    known = [name[len(PREFIX):] for name in list_configs()]
    close = difflib.get_close_matches(rel, known, n=3, cutoff=0.5)
    hint = f'; did you mean {", ".join(PREFIX + c for c in close)}?' if close else ''
    raise FileNotFoundError(f'config {path!r}: no packaged config {rel!r} in {root}{hint} '
                            '(densekit configs lists them)')
