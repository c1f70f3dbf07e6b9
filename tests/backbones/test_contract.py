"""The shape contract on every registered backbone: ``out_channels`` and per-axis
``out_strides`` describe what ``forward`` returns, on an odd-sized input.

Backbones are found by walking the registry (every class defined in ``densekit.backbones``,
where the restoration bodies live too, and every encoder), built from the registry walk's table
of small arguments, so a new backbone cannot be registered without being checked here.
"""
from __future__ import annotations

from typing import Tuple

import pytest
import torch

from densekit import registry
from densekit.backbones.contract import contract_of, expected_sizes
from tests.test_registry_walk import CASES

# registered in densekit.backbones or named like a backbone, but not one; each with the reason
NOT_BACKBONES = {
    'InceptionDWConv': 'the InceptionNeXt token mixer, a block',
    'MeshNet': 'a whole segmentation network: it returns class logits (decode_head=None)',
    'PIIPInteraction': "PIIP's cross-branch interaction unit: it maps two token sequences to two "
                       "(checked through PIIP)",
    'PIIPSimplePyramid': "PIIP's output pyramid: it takes PIIP's stride-16 map, and its strides "
                         "are the image's (checked through PIIP)",
    'ResNetHDC': "mmseg's ResNetV1c with a dilation schedule: 'auto' probes it like mmseg's",
}

def _is_backbone(name: str) -> bool:
    cls = registry.MODELS.get(name)
    module = getattr(cls, '__module__', '')
    return module.startswith('densekit.backbones') or name.endswith(('Encoder', 'Body'))


BACKBONES = sorted(n for n in CASES if _is_backbone(n) and n not in NOT_BACKBONES)


def _odd(size: Tuple[int, ...]) -> Tuple[int, ...]:
    """The walk's second input size made odd on every axis that allows it (encoders that
    need multiples of their total stride keep the walk's size)."""
    return tuple(s + 1 for s in size)


def test_walk_finds_the_backbones() -> None:
    assert {'ConvNeXt', 'EDSRBody', 'ResUNetEncoder', 'DFormerEncoder', 'PIIP'} <= set(BACKBONES)
    assert all(_is_backbone(n) for n in NOT_BACKBONES if n in CASES)


@pytest.mark.parametrize('name', BACKBONES)
def test_backbone_follows_the_contract(name: str) -> None:
    case = CASES[name]
    torch.manual_seed(0)
    model = case.build().eval()
    channels, strides = contract_of(model)
    size = case.sizes[1]
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        try:
            args = case.inputs(_odd(size), gen)
            out = model(*args)
        except ValueError:  # needs multiples of its total stride or window: the walk's size
            args = case.inputs(size, gen)
            out = model(*args)
            size = tuple(size)
        else:
            size = _odd(size)
    feats = list(out) if isinstance(out, (list, tuple)) else [out]
    assert len(feats) == len(channels), (name, len(feats), channels)
    spatial_dims = len(size)
    for i, (feat, c, bounds) in enumerate(zip(feats, channels, expected_sizes(model, size))):
        assert feat.shape[1] == c, (name, i, feat.shape, c)
        assert len(strides[i]) == spatial_dims, (name, i, strides[i])
        for axis, (n, (lo, hi)) in enumerate(zip(feat.shape[2:], bounds)):
            assert lo <= n <= hi, (name, i, axis, tuple(feat.shape), strides[i], size)
    info = model.feature_info()
    assert [d['num_chs'] for d in info] == list(channels)
    assert [d['stride'] for d in info] == [tuple(s) for s in strides]
