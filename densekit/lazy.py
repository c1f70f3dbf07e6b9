"""Modules imported on first use, so ``import densekit`` does not pay for them.

Registration needs only what a registered class is built from (torch, mmengine, mmcv, and
mmseg/mmdet where a class derives from theirs). Libraries a module only calls into (nibabel,
albumentations, scipy, kornia) are bound with :func:`lazy_module`: the name is there at import
time and the library loads the first time an attribute is read.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

__all__ = ['lazy_module']


def lazy_module(name: str) -> ModuleType:
    """``name`` as a module that executes on first attribute access.

    A module that is already imported is returned as it is. A submodule name
    (``'scipy.ndimage'``) imports its parent package at once and defers only itself.

    Raises:
        ModuleNotFoundError: ``name`` is not installed (raised now, not at first use).
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f'densekit needs {name!r}, which is not installed '
                                  f'(pip install densekit installs it)', name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition('.')
    if parent:
        setattr(sys.modules[parent], child, module)
    return module
