"""densekit installs like a library: configs ship as package data, ``densekit::`` names resolve,
and a wheel installed without ``-e`` runs the demo and a training from another directory."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from densekit.apis import load_config
from densekit.packaged import PREFIX, config_root, list_configs, resolve_config

REPO = Path(__file__).resolve().parents[1]
SR_CONFIG = 'restoration/fsrcnn_x2d56s12m4_1xb4-4min_photos.py'


def test_config_root_is_the_checkouts_configs_folder() -> None:
    assert config_root() == REPO / 'configs'


def test_every_leaf_config_has_a_packaged_name() -> None:
    leaves = sorted(p.relative_to(REPO / 'configs').as_posix()
                    for p in (REPO / 'configs').glob('*/*.py') if p.parent.name != '_base_')
    assert [name[len(PREFIX):] for name in list_configs()] == leaves
    assert all(n.startswith(PREFIX + 'medical3d/') for n in list_configs('medical3d'))
    for name in list_configs():
        assert Path(resolve_config(name)).is_file()


def test_a_packaged_name_loads_the_same_config_as_its_path() -> None:
    by_name = load_config(PREFIX + SR_CONFIG)
    by_path = load_config(REPO / 'configs' / SR_CONFIG)
    assert by_name.to_dict() == by_path.to_dict()
    # the .py suffix may be left out, as with mim's names
    assert load_config(PREFIX + SR_CONFIG[:-3]).to_dict() == by_path.to_dict()


def test_other_paths_pass_through_unchanged(tmp_path: Path) -> None:
    assert resolve_config(str(tmp_path / 'x.py')) == str(tmp_path / 'x.py')
    assert resolve_config(tmp_path) == str(tmp_path)


@pytest.mark.parametrize('name', ['densekit::', 'densekit::/etc/passwd',
                                  'densekit::../pyproject.toml', 'densekit::a\\b.py'])
def test_names_outside_the_configs_folder_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match='densekit::<task>/<file>.py'):
        resolve_config(name)


def test_an_unknown_name_lists_close_names() -> None:
    with pytest.raises(FileNotFoundError, match='did you mean densekit::restoration/fsrcnn_x2'):
        resolve_config('densekit::restoration/fsrcnn_x2d56s12m4_1xb4-4min_photo.py')


def _run(args: list, cwd: Path, env: dict, timeout: int = 400) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f'{args} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n' \
                                 f'{proc.stderr[-3000:]}'
    return proc


@pytest.fixture(scope='module')
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A wheel built from a copy of the sources, installed with pip (no ``-e``) into its own
    folder; returns (site folder, environment that imports densekit from it only)."""
    pytest.importorskip('setuptools')
    base = tmp_path_factory.mktemp('wheel')
    src = base / 'src'
    src.mkdir()
    for name in ('pyproject.toml', 'setup.py', 'README.md'):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
    shutil.copytree(REPO / 'densekit', src / 'densekit', ignore=ignore)
    shutil.copytree(REPO / 'configs', src / 'configs', ignore=ignore)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env['PIP_DISABLE_PIP_VERSION_CHECK'] = '1'
    _run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation',
          '-w', str(base / 'dist'), str(src)], cwd=base, env=env)
    wheel = next((base / 'dist').glob('densekit-*.whl'))
    site = base / 'site'
    _run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', str(site),
          str(wheel)], cwd=base, env=env)
    shutil.rmtree(src)  # nothing may come from the sources after this
    env['PYTHONPATH'] = str(site)
    return site, env, wheel


def test_the_wheel_carries_the_configs_and_the_command(installed: tuple) -> None:
    site, env, wheel = installed
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    configs = {'densekit/configs/' + p.relative_to(REPO / 'configs').as_posix()
               for p in (REPO / 'configs').rglob('*.py')}
    assert configs <= names, sorted(configs - names)  # every leaf and every _base_ part
    entry = next(n for n in names if n.endswith('entry_points.txt'))
    with zipfile.ZipFile(wheel) as archive:
        assert 'densekit = densekit.cli:main' in archive.read(entry).decode()
    assert not any(n.startswith(('tests/', 'benchmarks/', 'tools/')) for n in names)


def _photos(tmp_path: Path, env: dict) -> Path:
    code = ('from densekit.tasks.restoration.photos import generate_restoration_photos as g; '
            "print(g('data/restoration/photos'))")
    return Path(_run([sys.executable, '-c', code], cwd=tmp_path, env=env).stdout.split()[-1])


def test_installed_copy_trains_a_packaged_config_from_another_folder(installed: tuple,
                                                                      tmp_path: Path) -> None:
    site, env, _ = installed
    where = _run([sys.executable, '-c', 'import densekit.packaged as p; '
                  'print(p.__file__); print(p.config_root())'], cwd=tmp_path, env=env)
    module_file, root = where.stdout.split()
    assert Path(module_file).is_relative_to(site) and Path(root) == site / 'densekit' / 'configs'

    listed = _run([sys.executable, '-m', 'densekit', 'configs', 'restoration', '--paths'],
                  cwd=tmp_path, env=env).stdout.split()
    assert str(site / 'densekit' / 'configs' / SR_CONFIG) in listed

    photos = tmp_path / _photos(tmp_path, env)
    options = [f'{loader}.dataset.data_root={photos}'
               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    _run([sys.executable, '-m', 'densekit', 'train', PREFIX + SR_CONFIG, '--work-dir', 'run',
          '--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
          'default_hooks.checkpoint.interval=2', *options], cwd=tmp_path, env=env)
    assert (tmp_path / 'run' / 'iter_2.pth').is_file()
    assert not any((site / 'densekit' / 'configs').rglob('*.pth'))


@pytest.mark.slow
def test_installed_copy_runs_the_sr_demo_from_another_folder(installed: tuple,
                                                             tmp_path: Path) -> None:
    _, env, _ = installed
    _run([sys.executable, '-m', 'densekit', 'demo', '--task', 'sr', '--budget', '5',
          '--work-dir', 'demo', '--data-root', 'data'], cwd=tmp_path, env=env)
    summary = json.loads((tmp_path / 'demo' / 'summary.json').read_text())
    assert summary['sr']['train_iters'] >= 1 and summary['sr']['psnr_y'] > 0
    assert len(list((tmp_path / 'demo' / 'sr' / 'pictures').glob('*.png'))) == 3
