"""Config layout: leaves are built from ``configs/_base_/`` parts only and follow one naming scheme.

* No config uses ``_delete_`` (overrides only add or refine keys).
* Every ``_base_`` entry of a leaf points into ``configs/_base_/`` (never at another leaf).
* Inheritance is at most two levels deep: leaf -> part -> part.
* Leaf names follow ``{algorithm}_{backbone}_{neck/head}_{NxbM}-{schedule}_{dataset}-{crop}.py``
  (OpenMMLab's convention; restoration uses mmagic's ``{algorithm}_x{scale}c{channels}...``
  model token and has no crop).
"""
import ast
import re
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG_ROOT = REPO / 'configs'
BASE_ROOT = CONFIG_ROOT / '_base_'
ALL_CONFIGS = sorted(CONFIG_ROOT.rglob('*.py'))
LEAVES = sorted(p for p in CONFIG_ROOT.glob('*/*.py') if p.parent.name != '_base_')
MAX_DEPTH = 2

_TOKEN = r'[a-z0-9][a-z0-9.+]*(?:-[a-z0-9.+]+)*'
# {algorithm}[_{backbone}][_{neck/head}...]_{N}xb{M}-{schedule}_{dataset}[-{crop}].py
# schedule: iterations (800i, 80k, 300k), epochs (12e), mmdet's 1x/2x, or a time budget (4min).
NAME_RE = re.compile(
    rf'^(?P<model>{_TOKEN}(?:_{_TOKEN})*)'
    r'_(?P<gpus>\d+)xb(?P<batch>\d+)'
    r'-(?P<schedule>\d+(?:i|k|e|x|min))'
    r'_(?P<dataset>[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*)'
    r'(?:-(?P<crop>\d+x\d+(?:x\d+)?))?\.py$')
# tasks whose leaves name their training crop (detection on COCO keeps mmdet's crop-less names)
CROP_REQUIRED = {'segmentation': True, 'medical3d': True, 'detection': False,
                 'restoration': False}
RESTORATION_MODEL_RE = re.compile(rf'^{_TOKEN}_(?:x\d+)*(?:[a-z]\d+)*$')


def _base_entries(path: Path) -> List[str]:
    """The literal ``_base_`` list (or string) assigned at the top of a text config."""
    tree = ast.parse(path.read_text(encoding='utf-8'), filename=str(path))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == '_base_'):
            value = ast.literal_eval(node.value)
            if isinstance(value, str):
                return [value]
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return list(value)
            raise TypeError(f'{path}: _base_ must be a str or a list of str, got {value!r}')
    return []


def _resolve(path: Path, entry: str) -> Path:
    target = (path.parent / entry).resolve()
    if not target.is_file():
        raise FileNotFoundError(f'{path}: _base_ entry {entry!r} does not exist ({target})')
    return target


def _depth(path: Path) -> int:
    """Levels of inheritance below ``path`` (0 for a config without ``_base_``)."""
    entries = _base_entries(path)
    if not entries:
        return 0
    return 1 + max(_depth(_resolve(path, e)) for e in entries)


def test_the_configs_are_found() -> None:
    assert len(LEAVES) >= 50
    assert {p.parent.name for p in LEAVES} == set(CROP_REQUIRED)


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=lambda p: str(p.relative_to(CONFIG_ROOT)))
def test_no_config_deletes_inherited_keys(path: Path) -> None:
    assert '_delete_' not in path.read_text(encoding='utf-8')


@pytest.mark.parametrize('path', LEAVES, ids=lambda p: str(p.relative_to(CONFIG_ROOT)))
def test_a_leaf_inherits_only_base_parts(path: Path) -> None:
    entries = _base_entries(path)
    assert entries, f'{path.name} has no _base_ parts'
    for entry in entries:
        target = _resolve(path, entry)
        assert BASE_ROOT in target.parents, f'{path.name}: {entry} is not under configs/_base_/'


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=lambda p: str(p.relative_to(CONFIG_ROOT)))
def test_inheritance_is_at_most_two_levels_deep(path: Path) -> None:
    is_part = BASE_ROOT in path.parents
    depth = _depth(path)
    assert depth <= (MAX_DEPTH - 1 if is_part else MAX_DEPTH), (path.name, depth)
    if is_part:  # a part only inherits other parts
        for entry in _base_entries(path):
            assert BASE_ROOT in _resolve(path, entry).parents


@pytest.mark.parametrize('path', LEAVES, ids=lambda p: str(p.relative_to(CONFIG_ROOT)))
def test_a_leaf_name_follows_the_convention(path: Path) -> None:
    match = NAME_RE.match(path.name)
    assert match, f'{path.name} does not match {NAME_RE.pattern}'
    task = path.parent.name
    if CROP_REQUIRED[task]:
        assert match['crop'], f'{path.name}: {task} configs name their crop'
    if task == 'restoration':
        assert match['crop'] is None
        assert RESTORATION_MODEL_RE.match(match['model']), match['model']


def test_the_name_pattern_rejects_old_style_names() -> None:
    for name in ('fpn_r18-tiny_1xb8-shapes-128x128.py', 'edsr_baseline_x2_div2k.py',
                 'retinanet_r50_fpn_1x_coco.py', 'carn-m_x2_cpu_photos.py'):
        assert NAME_RE.match(name) is None, name
    match = NAME_RE.match('fpn_r18-tiny_1xb8-2000i_shapes-128x128.py')
    assert match and (match['gpus'], match['batch'], match['schedule'], match['dataset'],
                      match['crop']) == ('1', '8', '2000i', 'shapes', '128x128')


def test_leaf_names_are_unique_across_tasks() -> None:
    names = [p.name for p in LEAVES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize('path', LEAVES, ids=lambda p: str(p.relative_to(CONFIG_ROOT)))
def test_the_batch_size_in_the_name_is_the_configs(path: Path) -> None:
    from mmengine.config import Config

    match = NAME_RE.match(path.name)
    assert match, path.name
    cfg = Config.fromfile(str(path))
    assert cfg.train_dataloader.batch_size == int(match['batch'])
    schedule = match['schedule']
    if schedule.endswith('i'):
        assert cfg.train_cfg.max_iters == int(schedule[:-1])
    elif schedule.endswith('k'):
        assert cfg.train_cfg.max_iters == int(schedule[:-1]) * 1000
    elif schedule.endswith('x'):
        assert cfg.train_cfg.max_epochs == 12 * int(schedule[:-1])
    elif schedule.endswith('min'):
        assert cfg.time_budget_s == 60 * int(schedule[:-3])
