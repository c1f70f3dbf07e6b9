"""``in_channels='auto'``: necks and heads filled from the backbone at build time.

Every case builds the same model twice, once from the hand-typed config and once with
``'auto'``, and requires identical state-dict shapes, whether the wrapper is mmseg's, mmdet's
or densekit's and whether the backbone follows densekit's shape contract or is probed.
"""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from densekit.backbones.contract import fill_auto_channels, wants_auto_channels
from densekit.registry import MODELS

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'


def _shapes(model: torch.nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _model_cfg(relpath: str) -> dict:
    return Config.fromfile(str(CONFIGS / relpath)).model.to_dict()


def _auto(cfg: dict, *keys: str) -> dict:
    cfg = copy.deepcopy(cfg)
    for key in keys:
        cfg[key]['in_channels'] = 'auto'
    return cfg


@pytest.mark.parametrize('relpath,keys', [
    # mmseg wrapper, mmseg backbone (probed), densekit neck and head with in_index lists
    ('segmentation/fpn_r18-tiny_1xb8-shapes-128x128.py', ('neck', 'decode_head')),
    # mmdet wrapper, mmdet backbone (probed), mmdet head taking one int
    ('detection/retinanet_r18-half_fpn_1xb8-shapes-160x160.py', ('neck', 'bbox_head')),
    # densekit backbone (shape contract, no probe) feeding a neck
    ('segmentation/fastfcn_inceptionnext-atto-jpu_aspp_1xb8-shapes-128x128.py', ('neck',)),
])
def test_auto_equals_hand_typed(relpath: str, keys: tuple) -> None:
    init_default_scope('densekit')
    cfg = _model_cfg(relpath)
    auto = _auto(cfg, *keys)
    assert wants_auto_channels(auto) and not wants_auto_channels(cfg)
    filled = fill_auto_channels(auto, MODELS)
    for key in keys:
        want, got = cfg[key]['in_channels'], filled[key]['in_channels']
        assert (list(got) == list(want)) if isinstance(want, (list, tuple)) else got == want
    torch.manual_seed(0)
    assert _shapes(MODELS.build(auto)) == _shapes(MODELS.build(cfg))


def test_head_in_index_int_and_auxiliary_list() -> None:
    init_default_scope('densekit')
    cfg = _model_cfg('segmentation/fpn_r18-tiny_1xb8-shapes-128x128.py')
    cfg.pop('neck')
    cfg['decode_head'] = dict(type='mmseg.FCNHead', in_channels='auto', in_index=3, channels=16,
                              num_convs=1, num_classes=7)
    cfg['auxiliary_head'] = [dict(type='mmseg.FCNHead', in_channels='auto', in_index=2,
                                  channels=8, num_convs=1, num_classes=7)]
    filled = fill_auto_channels(cfg, MODELS)
    assert filled['decode_head']['in_channels'] == 256
    assert filled['auxiliary_head'][0]['in_channels'] == 128
    model = MODELS.build(cfg)
    out = model(torch.zeros(1, 3, 65, 67), mode='tensor')
    assert out.shape[1] == 7


def test_unset_auto_left_alone() -> None:
    cfg = dict(backbone=dict(type='x'), neck=dict(type='y', in_channels=[1, 2]))
    assert not wants_auto_channels(cfg)
    assert not wants_auto_channels(dict(neck=dict(in_channels='auto')))
