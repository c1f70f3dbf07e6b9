"""The densekit scope in OpenMMLab's registry tree, in all three directions."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope

import densekit  # noqa: F401
from densekit import registry


def test_densekit_registries_are_children_of_mmengine_roots() -> None:
    import mmengine.registry as root

    for name in ('MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'HOOKS', 'VISBACKENDS',
                 'MODEL_WRAPPERS', 'OPTIMIZERS', 'PARAM_SCHEDULERS', 'LOOPS'):
        child = getattr(registry, name)
        assert child.scope == 'densekit'
        assert child.parent is getattr(root, name)
        assert getattr(root, name)._children['densekit'] is child


def test_mmseg_and_mmdet_scoped_builds_reach_densekit(shapes_root: Path) -> None:
    from mmdet.registry import HOOKS as MMDET_HOOKS
    from mmseg.registry import DATASETS as MMSEG_DATASETS

    dataset = MMSEG_DATASETS.build(dict(
        type='densekit.ShapesDataset', data_root=str(shapes_root),
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'), pipeline=[]))
    assert type(dataset).__name__ == 'ShapesDataset' and len(dataset) == 4
    hook = MMDET_HOOKS.build(dict(type='densekit.TimeBudgetHook', budget_s=5))
    assert type(hook).__module__ == 'densekit.hooks'


def test_densekit_scope_builds_mmseg_and_mmdet_modules() -> None:
    with DefaultScope.overwrite_default_scope('densekit'):
        head = registry.MODELS.build(ConfigDict(
            type='mmdet.RetinaHead', num_classes=3, in_channels=16, feat_channels=16,
            stacked_convs=1,
            anchor_generator=dict(type='mmdet.AnchorGenerator', octave_base_scale=4,
                                  scales_per_octave=1, ratios=[1.0], strides=[8]),
            bbox_coder=dict(type='mmdet.DeltaXYWHBBoxCoder')))
        seg = registry.MODELS.build(ConfigDict(
            type='mmseg.EncoderDecoder',
            backbone=dict(type='mmseg.ResNetV1c', depth=18, stem_channels=8, base_channels=8),
            decode_head=dict(type='mmseg.FCNHead', in_channels=64, channels=8, num_classes=3,
                             in_index=3)))
        transform = registry.TRANSFORMS.build(dict(type='mmseg.PackSegInputs'))
        metric = registry.METRICS.build(dict(type='mmseg.IoUMetric'))
    assert type(head).__module__.startswith('mmdet.')
    assert type(seg).__module__.startswith('mmseg.')
    assert type(transform).__module__.startswith('mmseg.')
    assert type(metric).__module__.startswith('mmseg.')


def test_unknown_densekit_name_is_a_clear_error() -> None:
    from mmseg.registry import MODELS

    with pytest.raises(KeyError, match='densekit.NoSuchNeck'):
        MODELS.build(dict(type='densekit.NoSuchNeck'))


def test_registry_prefix_alone_registers_everything() -> None:
    # A fresh interpreter that never imports densekit by hand: mmengine imports
    # densekit.registry for the prefix, and the registry's lazy location imports the rest.
    code = ('from mmengine.registry import DATASETS, HOOKS\n'
            "assert DATASETS.get('densekit.ShapesDataset') is not None\n"
            "assert HOOKS.get('densekit.ProgressBarHook') is not None\n"
            'import sys; assert "densekit.tasks.segmentation" in sys.modules\n')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=300)


def test_custom_imports_registers_densekit(tmp_path: Path) -> None:
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text("custom_imports = dict(imports=['densekit'], allow_failed_imports=False)\n"
                        "hook = dict(type='densekit.ProgressBarHook')\n")
    code = ('from mmengine.config import Config\n'
            f'cfg = Config.fromfile({str(cfg_file)!r})\n'
            'import sys; assert "densekit" in sys.modules\n')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=300)
    assert Config.fromfile(str(cfg_file)).hook.type == 'densekit.ProgressBarHook'


def test_peer_modules_build_directly_while_densekit_is_the_default_scope() -> None:
    from mmengine.registry import init_default_scope
    from mmseg.models.decode_heads import FCNHead as MMSegFCNHead

    init_default_scope('densekit')
    try:
        head = MMSegFCNHead(in_channels=4, channels=4, num_classes=2)  # default loss by bare name
    finally:
        DefaultScope._instance_dict.pop(DefaultScope.get_current_instance().instance_name, None)
    assert type(head.loss_decode).__module__.startswith('mmseg.')
