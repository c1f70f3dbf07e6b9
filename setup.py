"""Packaging hook: ship the checkout's ``configs/`` as the package data ``densekit/configs``.

Everything else about the package is declared in pyproject.toml. The configs folder is mapped
into the package so that a wheel (``pip install .``, not editable) carries every config and
``densekit::<task>/<file>.py`` names resolve without a source checkout
(:mod:`densekit.packaged`).
"""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
CONFIGS = ROOT / 'configs'


def config_packages() -> list:
    """``densekit.configs`` and one package name per folder of ``configs/`` that holds configs."""
    folders = {CONFIGS} | {path.parent for path in CONFIGS.rglob('*.py')}
    names = []
    for folder in sorted(folders):
        parts = folder.relative_to(CONFIGS).parts
        names.append('.'.join(('densekit', 'configs', *parts)))
    return names


setup(packages=find_packages(include=['densekit', 'densekit.*']) + config_packages(),
      package_dir={'densekit.configs': 'configs'})
