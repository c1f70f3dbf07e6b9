"""Reversible couplings: exact inverse, autograd-equal gradients, nothing stored, encoder use."""
from __future__ import annotations

import pytest
import torch
from mmengine.registry import MODELS, init_default_scope
from mmengine.structures import BaseDataElement
from torch import nn

import densekit  # noqa: F401
from densekit.tasks.medical3d import (
    InvertedBottleneck,
    ReversibleCoupling,
    ReversibleSequence,
    RevUNetEncoder,
)


def _grads(seq: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> list:
    x = x.detach().clone().requires_grad_(True)
    seq.zero_grad(set_to_none=True)
    (seq(x) * weight).sum().backward()
    return [x.grad] + [p.grad for p in seq.parameters()]


@pytest.mark.parametrize('spatial_dims', [2, 3])
def test_inverse_rebuilds_the_input(spatial_dims):
    torch.manual_seed(0)
    seq = ReversibleSequence(spatial_dims, 8, depth=3, expand_ratio=3).double()
    x = torch.randn(2, 8, *[5, 6, 7][:spatial_dims], dtype=torch.float64)
    with torch.no_grad():
        y = seq(x)
        assert not torch.allclose(y, x, atol=0.1)  # the blocks do something
        assert torch.allclose(seq.inverse(y), x, atol=1e-10, rtol=0)
        block = seq.blocks[0]
        assert torch.allclose(block.inverse(block(x)), x, atol=1e-10, rtol=0)
        seq.float()
        y32 = seq(x.float())
        assert torch.allclose(seq.inverse(y32), x.float(), atol=1e-5, rtol=0)


def test_coupling_is_the_revnet_formula():
    torch.manual_seed(0)
    block = ReversibleCoupling(3, 6, expand_ratio=2)
    x = torch.randn(1, 6, 4, 5, 3)
    x1, x2 = x[:, :3], x[:, 3:]
    y1 = x1 + block.f(x2)
    expected = torch.cat([y1, x2 + block.g(y1)], dim=1)
    assert torch.allclose(block(x), expected, atol=1e-6)
    # the bottleneck: 1x1 expand, depthwise 3x3x3, linear 1x1 projection
    body = block.f
    assert body.expand.conv.kernel_size == (1, 1, 1) and body.expand.conv.out_channels == 6
    assert body.depthwise.conv.groups == 6 and body.depthwise.conv.kernel_size == (3, 3, 3)
    assert body.project.conv.out_channels == 3 and not body.project.with_activation


@pytest.mark.parametrize('spatial_dims', [2, 3])
def test_reversible_gradients_equal_autograd(spatial_dims):
    torch.manual_seed(0)
    seq = ReversibleSequence(spatial_dims, 8, depth=2).double().train()
    x = torch.randn(2, 8, *[6, 5, 7][:spatial_dims], dtype=torch.float64)
    weight = torch.randn_like(x)
    reversible = _grads(seq, x, weight)
    seq.reversible = False
    plain = _grads(seq, x, weight)
    assert len(reversible) == 1 + sum(1 for _ in seq.parameters())
    for a, b in zip(reversible, plain):
        assert a is not None and torch.allclose(a, b, atol=1e-5, rtol=0)
    assert float(plain[0].abs().max()) > 0


def test_only_the_output_is_stored():
    torch.manual_seed(0)
    seq = ReversibleSequence(3, 8, depth=3)
    x = torch.randn(1, 8, 8, 8, 8, requires_grad=True)

    def stored_numel(module: nn.Module) -> int:
        sizes = []

        def pack(t: torch.Tensor) -> torch.Tensor:
            if not isinstance(t, nn.Parameter):
                sizes.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            module(x)
        return sum(sizes)

    assert stored_numel(seq) == x.numel()  # the sequence output, nothing else
    seq.reversible = False
    assert stored_numel(seq) > 20 * x.numel()  # 4x-wide hidden maps, norms, activations


def test_batch_norm_running_stats_are_updated_once():
    torch.manual_seed(0)
    norm = dict(type='BN')
    seq = ReversibleSequence(3, 4, depth=1, norm_cfg=norm).train()
    x = torch.randn(2, 4, 4, 4, 4, requires_grad=True)
    seq(x).sum().backward()
    after_reversible = [b.clone() for b in seq.buffers()]
    torch.manual_seed(0)
    ref = ReversibleSequence(3, 4, depth=1, norm_cfg=norm, reversible=False).train()
    ref(x).sum().backward()
    for a, b in zip(after_reversible, ref.buffers()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_encoder_pyramid_checkpointing_and_errors():
    torch.manual_seed(0)
    enc = RevUNetEncoder(2, arch='tiny', depths=[2, 1, 1, 1])
    feats = enc(torch.rand(1, 2, 16, 16, 8))
    assert [tuple(f.shape) for f in feats] == [(1, 8, 16, 16, 8), (1, 16, 8, 8, 4),
                                               (1, 32, 4, 4, 2), (1, 64, 2, 2, 1)]
    assert [len(s.blocks) for s in enc.reversible_sequences()] == [2, 1, 1, 1]
    assert type(MODELS.build(dict(type='densekit.RevUNetEncoder', arch='tiny'))) is RevUNetEncoder
    # with_cp checkpoints the transitions only; gradients are unchanged
    x = torch.rand(1, 1, 8, 8, 8, requires_grad=True)
    grads = []
    for with_cp in (False, True):
        torch.manual_seed(1)
        net = RevUNetEncoder(1, arch='tiny', num_stages=3, with_cp=with_cp)
        sum(f.square().mean() for f in net(x)).backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5)
    with pytest.raises(ValueError, match='even'):
        RevUNetEncoder(1, widths=[8, 15], depths=[1, 1])
    with pytest.raises(ValueError, match='expand_ratio'):
        RevUNetEncoder(1, arch='tiny', expand_ratio=0)
    with pytest.raises(ValueError, match='kernel_size'):
        InvertedBottleneck(3, 4, kernel_size=2)
    with pytest.raises(ValueError, match='depth'):
        ReversibleSequence(3, 4, depth=0)


def test_training_step_in_the_segmentor():
    init_default_scope('densekit')
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='MedicalSegmentor',
        backbone=dict(type='RevUNetEncoder', in_channels=2, arch='tiny', depths=[1, 1, 2, 1]),
        decode_head=dict(type='UNetDecoderHead', in_channels=[8, 16, 32, 64], num_classes=3),
        test_cfg=dict(roi_size=(16, 16, 16))))
    x = torch.randn(2, 2, 16, 16, 16)
    target = (x[:, 0] > 0.3).long() + (x[:, 1] > 1.2).long()
    samples = [BaseDataElement(gt_seg=t) for t in target]
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(3):
        loss = sum(model(x, samples, mode='loss').values())
        optim.zero_grad()
        loss.backward()
        # every parameter but the coarsest deep-supervision head (weight 0, as nnU-Net) learns
        missing = [n for n, p in model.named_parameters()
                   if p.grad is None or not torch.isfinite(p.grad).all()]
        assert missing == ['decode_head.seg_heads.2.weight', 'decode_head.seg_heads.2.bias']
        assert all(float(p.grad.abs().sum()) > 0 for p in model.backbone.parameters())
        optim.step()
        losses.append(float(loss))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    labels = model.eval().predict_volume(torch.randn(2, 20, 18, 16))
    assert labels.shape == (20, 18, 16)


def test_eval_forward_treats_samples_independently():
    """The per_sample_eval declarations hold: a batch gives each sample's own result, so sliding
    windows may be micro-batched (batching.independent_samples)."""
    from densekit.windowed.batching import independent_samples

    torch.manual_seed(0)
    encoder = RevUNetEncoder(1, widths=[4, 8, 16], depths=[1, 1, 1]).eval()
    assert independent_samples(encoder)
    x = torch.randn(3, 1, 16, 16, 16)
    with torch.no_grad():
        batched = encoder(x)
        singles = [encoder(x[i:i + 1]) for i in range(3)]
    for level, out in enumerate(batched):
        alone = torch.cat([s[level] for s in singles])
        # float32 kernels may block a batch differently: rounding only
        assert torch.allclose(out, alone, rtol=1e-5, atol=1e-5 * out.abs().max().item())
