"""Why densekit's configs are text configs (``_base_`` lists), not ``read_base()`` modules.

Users inherit densekit leaves from their own OpenMMLab text configs (``_base_ = [...]``, as they
inherit mmseg's and mmdet's). mmengine 0.10.7 refuses a text config whose base is a
``read_base()`` config, so converting the leaves would break every such user config. A part
of plain assignments is importable Python as it is, so a user's ``read_base()`` config can
import it. The last test pins mmengine's refusal: when mmengine lifts it, it fails, and the
leaves can move to ``read_base()``.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

CONFIGS = Path(__file__).parents[1] / 'configs'
LEAF = CONFIGS / 'segmentation' / 'fpn_r18-tiny_1xb8-2000i_shapes-128x128.py'


def test_a_users_text_config_inherits_a_densekit_leaf(tmp_path: Path) -> None:
    user = tmp_path / 'my_fpn.py'
    user.write_text(f"_base_ = [{str(LEAF)!r}]\n"
                    "model = dict(decode_head=dict(num_classes=9))\n"
                    "train_dataloader = dict(batch_size=2)\n")
    cfg = Config.fromfile(str(user)).to_dict()
    expected = Config.fromfile(str(LEAF)).to_dict()
    expected['model']['decode_head']['num_classes'] = 9
    expected['train_dataloader']['batch_size'] = 2
    assert cfg == expected


def test_a_read_base_config_of_a_user_imports_a_densekit_part(tmp_path: Path) -> None:
    """A part of plain assignments is importable Python as it is: a user's ``read_base()``
    config gets the same values from it as a text config does."""
    part = CONFIGS / '_base_' / 'models' / 'r18-half-d8_encoder-decoder.py'
    assert '_base_' not in part.read_text()
    (tmp_path / 'parts').mkdir()
    (tmp_path / 'parts' / 'model.py').write_text(part.read_text())
    user = tmp_path / 'lazy.py'
    user.write_text('from mmengine.config import read_base\n\nwith read_base():\n'
                    '    from .parts.model import *  # noqa: F401,F403\n')
    assert Config.fromfile(str(user)).to_dict()['model'] == \
        Config.fromfile(str(part)).to_dict()['model']


def test_mmengine_refuses_a_text_config_on_a_read_base_config(tmp_path: Path) -> None:
    (tmp_path / 'lazy.py').write_text('from mmengine.config import read_base\n\n'
                                      'with read_base():\n    pass\n\nmodel = dict(type="A")\n')
    (tmp_path / 'text.py').write_text("_base_ = ['./lazy.py']\nmodel = dict(depth=2)\n")
    with pytest.raises(RuntimeError, match='must match'):
        Config.fromfile(str(tmp_path / 'text.py'))
