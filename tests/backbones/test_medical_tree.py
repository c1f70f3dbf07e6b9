"""The medical networks in the tree by role: the encoders are backbones, the decoder a head, the
blocks blocks. Moving them changed no state dict, no initialisation and no output, and the old
import paths still give the same classes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import densekit  # noqa: F401
from densekit.registry import MODELS

REPO = Path(__file__).resolve().parents[2]
# keys -> shapes, the sum of the seeded initial parameters and of the backbone's float64
# features on a seeded 16^3 input, recorded from the networks before they moved
FIXTURE = json.loads((REPO / 'tests' / 'fixtures' / 'medical_state.json').read_text())


@pytest.mark.parametrize('name', sorted(FIXTURE))
def test_state_dict_init_and_features_unchanged(name):
    expected = FIXTURE[name]
    cfg = Config.fromfile(str(REPO / 'configs' / 'medical3d' / name))
    init_default_scope('densekit')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).double().eval()
    sd = model.state_dict()
    assert {k: list(v.shape) for k, v in sd.items()} == expected['keys']
    params = float(sum(v.double().sum() for v in sd.values() if v.is_floating_point()))
    assert params == pytest.approx(expected['params'], rel=1e-12)
    cin = next(v.shape[1] for v in sd.values() if v.dim() == 5)
    torch.manual_seed(1)
    x = torch.randn(1, cin, 16, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        total = float(sum(f.sum() for f in model.backbone(x)))
    # float64 sums of O(1e4) features: kernels may round differently, far below 1e-9
    assert total == pytest.approx(expected['features_sum'], rel=1e-9)


def test_networks_live_by_role_and_old_paths_re_export():
    from densekit.backbones.dformer import DFormerEncoder
    from densekit.backbones.revunet import RevUNetEncoder
    from densekit.backbones.unet_encoder import ResUNetEncoder
    from densekit.blocks.residual import ConvNormResBlock, UpConcat
    from densekit.blocks.reversible import ReversibleCoupling
    from densekit.heads.unet_head import UNetDecoderHead
    from densekit.tasks.medical3d import blocks, dformer, reversible, unet

    assert unet.ResUNetEncoder is ResUNetEncoder and unet.UNetDecoderHead is UNetDecoderHead
    assert reversible.RevUNetEncoder is RevUNetEncoder
    assert reversible.ReversibleCoupling is ReversibleCoupling
    assert dformer.DFormerEncoder is DFormerEncoder
    assert blocks.ResBlock is ConvNormResBlock and blocks.UpConcat is UpConcat
    for cls in (ResUNetEncoder, RevUNetEncoder, DFormerEncoder):
        assert cls.__module__.startswith('densekit.backbones.')
        assert MODELS.get(cls.__name__) is cls
    assert UNetDecoderHead.__module__ == 'densekit.heads.unet_head'
    # one name per block: the STU-Net block is no longer a second `ResBlock` in the tree
    import densekit.blocks as tree_blocks
    assert not hasattr(tree_blocks, 'ResBlock')
