"""Sliding-window inference: same numbers as MONAI's, labels slab by slab, fast path exactness."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from densekit.accel.volumetric import instance_norm_act_, instance_stats
from densekit.tasks.medical3d import (
    fast_inference,
    importance_map,
    sliding_window_inference,
    sliding_window_labels,
)
from densekit.windowed.grid import window_starts

monai_inferers = pytest.importorskip('monai.inferers')
warnings.filterwarnings('ignore', category=UserWarning)


def small_net(in_ch: int = 2, out_ch: int = 4) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(in_ch, 6, 3, padding=1), nn.InstanceNorm3d(6, affine=True),
                        nn.LeakyReLU(0.01), nn.Conv3d(6, out_ch, 3, padding=1))
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.normal_()
    return net.eval()


CASES = [  # shape, roi, overlap, mode, sw_batch_size
    ((2, 2, 40, 37, 29), (16, 16, 16), 0.25, 'gaussian', 3),   # windows of 2 images per batch
    ((1, 2, 10, 33, 20), (16, 16, 16), 0.5, 'constant', 2),    # padded: an axis < roi
    ((1, 2, 24, 24, 24), (8, 12, 16), (0.3, 0.6, 0.1), 'gaussian', 5),
    ((1, 2, 30, 26, 22), (12, -1, 10), 0.8, 'gaussian', 1),    # roi -1 = full axis; overlap 0.8
]


@pytest.mark.parametrize('shape,roi,overlap,mode,sw', CASES)
def test_matches_monai_and_labels_match_argmax(shape, roi, overlap, mode, sw):
    net = small_net()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    x0 = x.clone()
    with torch.no_grad():
        ref = monai_inferers.sliding_window_inference(x, roi, sw, net, overlap=overlap,
                                                      mode=mode, sigma_scale=(0.1, 0.125, 0.2))
    out = sliding_window_inference(x, roi, sw, net, overlap=overlap, mode=mode,
                                   sigma_scale=(0.1, 0.125, 0.2))
    assert out.shape == ref.shape and not out.requires_grad
    # the fast path runs the convs on channels-last activations: same result up to the
    # accumulation order of float32 sums (the benchmark's agreement target is 1e-4)
    assert (out - ref).abs().max() < 1e-4
    labels = sliding_window_labels(x, roi, sw, net, overlap=overlap, mode=mode,
                                   sigma_scale=(0.1, 0.125, 0.2))
    assert labels.dtype == torch.uint8 and labels.shape == (shape[0], *shape[2:])
    assert torch.equal(labels.long(), ref.argmax(1))
    assert torch.equal(x, x0)


def test_multi_resolution_dict_outputs_match_monai():
    net = small_net()

    def predictor(x):
        y = net(x)
        return {'full': y, 'half': nn.functional.avg_pool3d(y, 2)}

    x = torch.randn(1, 2, 40, 48, 36)
    with torch.no_grad():
        ref = monai_inferers.sliding_window_inference(x, 16, 2, predictor, overlap=0.5,
                                                      mode='gaussian')
    out = sliding_window_inference(x, 16, 2, predictor, overlap=0.5, mode='gaussian')
    assert out['half'].shape == (1, 4, 20, 24, 18)
    for key in ('full', 'half'):
        assert (out[key] - ref[key]).abs().max() < 1e-5


def test_input_never_modified_even_by_an_in_place_predictor():
    def in_place(x):
        return x.mul_(2.0)  # a predictor that writes into its input

    x = torch.rand(1, 1, 20, 20, 20)
    x0 = x.clone()
    out = sliding_window_inference(x, 8, 1, in_place, overlap=0.5)
    assert torch.equal(x, x0)
    assert torch.allclose(out, 2 * x0, atol=1e-6)
    with torch.no_grad():  # MONAI hands the predictor a view of the input
        monai_inferers.sliding_window_inference(x, 8, 1, in_place, overlap=0.5)
    assert not torch.equal(x, x0)


def test_window_grid_and_importance_map_match_monai():
    from monai.data.utils import compute_importance_map, dense_patch_slices

    for size, roi, step in [(128, 64, 48), (60, 48, 24), (37, 16, 12), (16, 16, 16)]:
        expected = sorted({s[0].start for s in dense_patch_slices((size,), (roi,), (step,))})
        assert window_starts(size, roi, step) == expected
    ours = importance_map((16, 24, 20), 'gaussian', (0.1, 0.125, 0.2))
    ref = compute_importance_map((16, 24, 20), 'gaussian', (0.1, 0.125, 0.2))
    assert torch.equal(ours, ref)
    assert importance_map((16, 24, 20), 'gaussian', (0.1, 0.125, 0.2)) is ours  # cached


@pytest.mark.parametrize('kwargs,exc,words', [
    (dict(overlap=1.0), ValueError, 'overlap'),
    (dict(mode='cosine'), ValueError, 'mode'),
    (dict(sw_batch_size=0), ValueError, 'sw_batch_size'),
    (dict(padding_mode='zeros'), ValueError, 'padding_mode'),
    (dict(roi_size=(8, 8)), ValueError, 'roi_size'),
    (dict(inputs=torch.zeros(1, 1, 8, 8, 8, dtype=torch.long)), TypeError, 'floating'),
])
def test_bad_arguments_raise_early(kwargs, exc, words):
    args = dict(inputs=torch.zeros(1, 1, 8, 8, 8), roi_size=4, sw_batch_size=1,
                predictor=nn.Identity())
    args.update(kwargs)
    with pytest.raises(exc, match=words):
        sliding_window_inference(**args)


def test_instance_stats_exact_without_cancellation():
    x = torch.randn(2, 3, 17, 19, 23) * 0.01 + 100.0  # mean >> std: E[x^2] - E[x]^2 is fragile
    assert instance_stats(x.clone(), eps=1e-5) is None  # out of place: refuse, fall back
    norm = nn.InstanceNorm3d(3, affine=True)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
        ref = F.leaky_relu(F.instance_norm(x.double(), weight=norm.weight.double(),
                                           bias=norm.bias.double()), 0.01)
        fast = instance_norm_act_(x.clone(), norm, 0.01)  # shifts in place first
    assert (fast.double() - ref).abs().max() < 1e-4
    y = torch.randn(2, 3, 17, 19, 23)
    mean, inv_std = instance_stats(y, eps=1e-5)
    flat = y.double().reshape(6, -1)
    assert torch.allclose(mean.double(), flat.mean(1), atol=1e-6)
    assert torch.allclose(inv_std.double(), torch.rsqrt(flat.var(1, unbiased=False) + 1e-5),
                          rtol=1e-5)


def test_fast_path_equals_reference_for_foreign_and_densekit_networks():
    from monai.networks.nets import DynUNet

    from densekit.tasks.medical3d import ResUNetEncoder, UNetDecoderHead

    torch.manual_seed(0)
    dyn = DynUNet(3, 1, 3, kernel_size=[3, 3, 3], strides=[1, 2, 2],
                  upsample_kernel_size=[2, 2], filters=[4, 8, 16],
                  norm_name=('INSTANCE', {'affine': True})).eval()
    enc, head = ResUNetEncoder(1, widths=[4, 8, 16], depths=[1, 2, 1]), UNetDecoderHead(
        [4, 8, 16], 3, depths=[2, 1])
    ours = nn.Sequential(enc, head).eval()
    for net in (dyn, ours):
        for m in net.modules():
            if isinstance(m, nn.InstanceNorm3d):
                with torch.no_grad():
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_()
    x = torch.randn(2, 1, 16, 24, 20)
    for net in (dyn, ours):
        with torch.no_grad():
            ref = net(x)
        with torch.inference_mode(), fast_inference():
            fast = net(x)
        assert (fast - ref).abs().max() < 1e-4 * max(1.0, float(ref.abs().max()))
    x = x[:1, :, :12]
    out = sliding_window_inference(x, 8, 4, ours, overlap=0.5, mode='gaussian')
    with torch.no_grad():
        ref = monai_inferers.sliding_window_inference(x, 8, 4, ours, overlap=0.5,
                                                      mode='gaussian')
    assert (out - ref).abs().max() < 1e-4


def test_grad_flows_when_the_input_requires_grad():
    net = small_net(1, 2)
    x = torch.rand(1, 1, 12, 12, 12, requires_grad=True)
    out = sliding_window_inference(x, 8, 2, net, overlap=0.5, mode='gaussian')
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_call_planner_measures_then_keeps_the_faster_call_pattern():
    from densekit.windowed.batching import CallPlanner

    planner = CallPlanner(4, None, adaptive=True)
    steps = []
    for index in range(9):
        step = planner.step(index)
        steps.append(step)
        planner.record(index, 0.1 * (1 if step == 1 else 8), 4)  # split: 0.4 s, full: 0.8 s
    assert steps == [4, 1, 4, 1, 4, 1, 1, 1, 1]
    assert CallPlanner(4, 2, adaptive=True).step(7) == 2
    assert CallPlanner(4, None, adaptive=False).step(7) == 4
    with pytest.raises(ValueError, match='micro_batch'):
        sliding_window_inference(torch.zeros(1, 1, 8, 8, 8), 4, 2, nn.Identity(),
                                 micro_batch='fastest')
