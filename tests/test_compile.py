"""One model of each task family under ``torch.compile`` matches eager (forward and backward).

The backend is ``aot_eager``: dynamo captures the graph (where :mod:`densekit.accel` sees
``torch.compiler.is_compiling()`` and runs the plain ops) and AOTAutograd traces forward and
backward, which is what a custom autograd Function or a shape-specialised fast path would
break. Inductor's C++ code generation adds minutes of compile time on a 2-core CPU without
changing what is tested here, so it is not used.
"""
from __future__ import annotations

from typing import Callable, List

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from torch import nn

import densekit  # noqa: F401
from densekit.registry import MODELS
from tests.backbone_harness import tiny_retinanet
from tests.helpers.numerics import (
    assert_close_to_reference,
    float64_copy,
    randomize_norms_,
    torch_threads,
)


def _build(cfg: dict) -> nn.Module:
    with DefaultScope.overwrite_default_scope('densekit'):
        return MODELS.build(ConfigDict(cfg))


def seg() -> nn.Module:
    return _build(dict(
        type='mmseg.EncoderDecoder',
        backbone=dict(type='mmseg.ResNetV1c', depth=18, stem_channels=8, base_channels=8,
                      strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4)),
        decode_head=dict(type='densekit.ASPPHead', in_channels=64, channels=8, num_classes=3,
                         in_index=3, dilations=(1, 2, 3), dropout_ratio=0.0,
                         norm_cfg=dict(type='BN'))))


def det() -> nn.Module:
    return tiny_retinanet(dict(type='mmdet.ResNet', depth=18, base_channels=8, stem_channels=8,
                               out_indices=(1, 2, 3)), [16, 32, 64])


def sr() -> nn.Module:
    return _build(dict(type='Restorer', scale=2,
                       backbone=dict(type='EDSRBody', channels=8, num_blocks=2),
                       head=dict(type='PixelShuffleHead', in_channels=8, scale=2)))


def derain() -> nn.Module:
    return _build(dict(type='Restorer', scale=1,
                       backbone=dict(type='DRSformer', dim=8, num_blocks=(1, 1, 1, 1),
                                     heads=(1, 1, 2, 2)),
                       head=dict(type='ReconstructionHead', in_channels=16)))


def medical() -> nn.Module:
    return _build(dict(type='MedicalSegmentor',
                       backbone=dict(type='ResUNetEncoder', in_channels=1, widths=[4, 8, 16],
                                     depths=[1, 1, 1]),
                       decode_head=dict(type='UNetDecoderHead', in_channels=[4, 8, 16],
                                        num_classes=2),
                       test_cfg=dict(roi_size=(16, 16, 16))))


FAMILIES = {
    'seg': (seg, (2, 3, 32, 32)),
    'det': (det, (2, 3, 64, 64)),
    'sr': (sr, (2, 3, 16, 16)),
    'derain': (derain, (2, 3, 16, 16)),
    'medical': (medical, (1, 1, 16, 16, 16)),
}


def _tensors(obj) -> List[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    return []


def _run(model: Callable, x: torch.Tensor) -> List[torch.Tensor]:
    """Outputs (mode='tensor') and the input gradient of a fixed weighted sum of them."""
    x = x.clone().requires_grad_()
    outs = _tensors(model(x, mode='tensor'))
    gen = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=gen).to(o.dtype)).sum() for o in outs)
    loss.backward()
    return [o.detach() for o in outs] + [x.grad]


# derain (a small DRSformer) compiles for 30 s on 2 cores: it runs with `make test-all`
@pytest.mark.parametrize('family', [
    pytest.param(f, marks=pytest.mark.slow) if f == 'derain' else f for f in sorted(FAMILIES)])
def test_model_compiles_and_matches_eager(family):
    torch._dynamo.reset()
    build, shape = FAMILIES[family]
    torch.manual_seed(0)
    model = randomize_norms_(build()).eval()  # eval: running statistics, deterministic
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    with torch_threads(1):
        eager = _run(model, x)
        compiled = _run(torch.compile(model, backend='aot_eager'), x)
        ref = _run(float64_copy(model), x.double())
    assert len(compiled) == len(eager)
    assert_close_to_reference(compiled, eager, ref, what=f'{family} compiled')
