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

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'


def _shapes(model: torch.nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _model_cfg(relpath: str) -> dict:
    return Config.fromfile(str(CONFIGS / relpath)).model.to_dict()


def _with_channels(cfg: dict, values: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    for key, value in values.items():
        cfg[key]['in_channels'] = value
    return cfg


@pytest.mark.parametrize('relpath,hand_typed', [
    # mmseg wrapper, mmseg backbone (probed), densekit neck and head with in_index lists
    ('segmentation/fpn_r18-tiny_1xb8-2000i_shapes-128x128.py',
     dict(neck=[32, 64, 128, 256], decode_head=[32, 32, 32, 32])),
    # mmseg head with an int in_index
    ('segmentation/deeplabv3_r18-half-d8_1xb8-800i_shapes-128x128.py', dict(decode_head=256)),
    # mmdet wrapper, mmdet backbone (probed), mmdet head taking one int
    ('detection/retinanet_r18-half_fpn_1xb8-2000i_shapes-160x160.py',
     dict(neck=[64, 128, 256], bbox_head=64)),
    # densekit backbone (shape contract, no probe) feeding a neck
    ('segmentation/fastfcn_inceptionnext-atto-jpu_aspp_1xb8-800i_shapes-128x128.py',
     dict(neck=[80, 160, 320])),
    # densekit restorer, restoration body (probed, one level), reconstruction head taking an int
    ('restoration/edsr_x2c32b8_1xb4-4min_photos.py', dict(head=32)),
    # densekit medical wrapper, 3D encoder, 3D FPN neck, U-Net decoder taking every level
    ('medical3d/resunet-fpn-tiny_1xb2-600i_phantoms-48x48x48.py',
     dict(neck=[8, 16, 32, 64], decode_head=[16, 16, 16, 16])),
])
def test_auto_equals_hand_typed(relpath: str, hand_typed: dict) -> None:
    init_default_scope('densekit')
    base = _model_cfg(relpath)
    cfg = _with_channels(base, hand_typed)
    auto = _with_channels(base, {key: 'auto' for key in hand_typed})
    assert wants_auto_channels(auto) and not wants_auto_channels(cfg)
    filled = fill_auto_channels(auto, MODELS)
    for key, want in hand_typed.items():
        got = filled[key]['in_channels']
        assert (list(got) == want) if isinstance(want, list) else got == want, key
    torch.manual_seed(0)
    built_auto = MODELS.build(auto)
    torch.manual_seed(0)
    built = MODELS.build(cfg)
    assert _shapes(built_auto) == _shapes(built)
    # the probe leaves the random state alone: same seed, same initial weights
    for (name, a), b in zip(built_auto.state_dict().items(), built.state_dict().values()):
        assert torch.equal(a, b), name


def test_head_in_index_int_and_auxiliary_list() -> None:
    init_default_scope('densekit')
    cfg = _model_cfg('segmentation/fpn_r18-tiny_1xb8-2000i_shapes-128x128.py')
    cfg.pop('neck')
    cfg['decode_head'] = dict(type='mmseg.FCNHead', in_channels='auto', channels=16,
                              num_convs=1, num_classes=7)  # in_index defaults to -1
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


def test_auto_without_backbone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="neck: in_channels='auto' needs a backbone"):
        wants_auto_channels(dict(neck=dict(type='y', in_channels='auto')))


def test_auto_with_in_index_out_of_range_names_the_head() -> None:
    init_default_scope('densekit')
    cfg = _model_cfg('segmentation/fpn_r18-tiny_1xb8-2000i_shapes-128x128.py')
    cfg.pop('neck')
    cfg['decode_head'] = dict(type='mmseg.FCNHead', in_channels='auto', in_index=4,
                              channels=8, num_convs=1, num_classes=7)
    with pytest.raises(ValueError, match=r"decode_head: in_channels='auto' with in_index=4, "
                                         r'but what feeds it returns 4 levels'):
        MODELS.build(cfg)
