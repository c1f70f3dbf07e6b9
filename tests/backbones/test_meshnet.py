"""MeshNet (densekit/backbones/meshnet.py) and MedicalSegmentor without a decoder: the paper's
parameter counts, build-time errors, shapes on odd sizes, the receptive field, and where
sliding-window inference equals whole-volume inference."""
from __future__ import annotations

import pytest
import torch
from mmengine.registry import DefaultScope

import densekit  # noqa: F401  (registers everything)
from densekit.accel import fast_paths
from densekit.backbones.meshnet import PAPER_DILATIONS, MeshNet
from densekit.errors import ArgumentError
from densekit.registry import MODELS
from densekit.windowed.batching import independent_samples
from densekit.windowed.engine import sliding_window_inference
from densekit.windowed.grid import window_starts
from tests.helpers.numerics import assert_close_to_reference, float64_copy, randomize_norms_


def build(cfg: dict) -> torch.nn.Module:
    with DefaultScope.overwrite_default_scope('densekit'):
        return MODELS.build(cfg)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def hand_count(in_channels: int, num_classes: int, width: int, depth: int) -> int:
    """3^3 conv weights + bias + BatchNorm weight and bias per layer, then the 1^3 classifier."""
    first = 27 * in_channels * width + 3 * width
    rest = (depth - 1) * (27 * width * width + 3 * width)
    return first + rest + width * num_classes + num_classes


@pytest.mark.parametrize('width, paper', [(5, 5_682), (16, 56_194), (26, 147_474)])
def test_paper_parameter_counts(width, paper):
    # MeshNet-5/16/26 of Fedorov et al. 2025: 1 input channel (T1), 2 classes (lesion)
    net = MeshNet(in_channels=1, num_classes=2, channels=width)
    assert count(net) == paper == hand_count(1, 2, width, 9)
    segmentor = build(dict(type='MedicalSegmentor', decode_head=None,
                           backbone=dict(type='MeshNet', channels=width)))
    assert count(segmentor) == paper  # the segmentor adds no parameters


def test_other_widths_and_depths_match_the_hand_count():
    net = MeshNet(in_channels=2, num_classes=3, channels=7, dilations=(1, 2, 1, (1, 2, 2)))
    assert count(net) == hand_count(2, 3, 7, 4)
    assert net.receptive_field == (11, 13, 13)  # 1 + 2 * (1 + 2 + 1 + 1 | 2) per axis
    assert MeshNet().receptive_field == (123,) * 3
    assert MeshNet().dilations == tuple((d,) * 3 for d in PAPER_DILATIONS)


@pytest.mark.parametrize('kwargs, match', [
    (dict(channels=0), 'channels must be a positive int, got 0'),
    (dict(channels=4.0), 'channels must be a positive int'),
    (dict(in_channels=True), 'in_channels must be a positive int, got True'),
    (dict(num_classes=1), r'num_classes must be an int >= 2 .* got 1'),
    (dict(dilations=()), 'dilations must be a non-empty sequence'),
    (dict(dilations=4), 'dilations must be a non-empty sequence'),
    (dict(dilations='124'), 'dilations must be a non-empty sequence'),
    (dict(dilations=(1, 0, 2)), r'dilations\[1\]=0: every item must be >= 1'),
    (dict(dilations=(1, (1, 2))), r'dilations\[1\]=\(1, 2\) has 2 items'),
    (dict(dilations=(1, 2.0)), r'dilations\[1\] must be an int'),
    (dict(dropout=1.0), r'dropout must be a probability in \[0, 1\), got 1.0'),
    (dict(dropout=-0.1), 'dropout must be a probability'),
])
def test_bad_arguments_raise_at_build_time(kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        MeshNet(**kwargs)


def test_bad_spatial_dims_and_inputs():
    with pytest.raises(ValueError, match='spatial_dims must be one of'):
        MeshNet(spatial_dims=4)
    net = MeshNet(in_channels=2, channels=2, dilations=(1,))
    with pytest.raises(ValueError, match=r'MeshNet expects \(N, 2, \*3 spatial dims\), got '
                                         r'\(1, 3, 5, 5, 5\)'):
        net(torch.rand(1, 3, 5, 5, 5))
    with pytest.raises(ValueError, match='MeshNet expects'):
        net(torch.rand(1, 2, 5, 5))


def test_segmentor_without_decoder_needs_a_logit_backbone():
    encoder = dict(type='ResUNetEncoder', in_channels=1, widths=[4, 8], depths=[1, 1])
    with pytest.raises(ValueError, match=r'decode_head=None needs a backbone .* '
                                         r'ResUNetEncoder has num_classes=None'):
        build(dict(type='MedicalSegmentor', backbone=encoder, decode_head=None))
    with pytest.raises(ValueError, match='needs a decode_head'):
        build(dict(type='MedicalSegmentor', backbone=dict(type='MeshNet'), decode_head=None,
                   neck=dict(type='FPN', in_channels=[4], out_channels=4, num_outs=1)))


@pytest.mark.parametrize('spatial_dims, size', [(3, (9, 12, 7)), (3, (1, 5, 3)), (2, (13, 6))])
def test_output_keeps_odd_input_sizes(spatial_dims, size):
    net = MeshNet(in_channels=2, num_classes=3, channels=4, dilations=(1, 2, 4, 2),
                  spatial_dims=spatial_dims)
    assert net(torch.rand(2, 2, *size)).shape == (2, 3, *size)


def test_receptive_field_is_exactly_one_plus_twice_the_dilation_sum():
    # gradient of the centre output w.r.t. the input: nonzero exactly on the receptive field
    torch.manual_seed(0)
    net = MeshNet(in_channels=1, num_classes=2, channels=3, dilations=(1, 2, 3),
                  norm_cfg=None, act_cfg=dict(type='LeakyReLU', negative_slope=0.5)).double()
    x = torch.randn(1, 1, 17, 17, 17, dtype=torch.float64, requires_grad=True)
    net(x)[0, 1, 8, 8, 8].backward()
    support = x.grad[0, 0].abs() > 0
    for axis in range(3):
        reach = support.any(dim=tuple(a for a in range(3) if a != axis)).nonzero().flatten()
        assert (reach.min().item(), reach.max().item()) == (8 - 6, 8 + 6)  # 1 + 2 * 6 = 13
    assert net.receptive_field == (13, 13, 13)


def _eval_segmentor(roi, overlap=0.5, mode='gaussian'):
    torch.manual_seed(0)
    model = build(dict(type='MedicalSegmentor', decode_head=None,
                       backbone=dict(type='MeshNet', in_channels=2, num_classes=3, channels=4,
                                     dilations=(1, 2, 1)),  # receptive field 9: radius 4
                       test_cfg=dict(roi_size=roi, overlap=overlap, mode=mode)))
    with torch.no_grad():
        randomize_norms_(model)  # non-trivial running statistics: padding is not a no-op
    return model.eval()


def test_whole_volume_window_is_the_whole_volume_forward():
    # roi_size=None: one window, the volume itself; against the float64 forward, with the
    # plain float32 forward's error as the yardstick
    model = _eval_segmentor(roi=None)
    volume = torch.randn(2, 21, 17, 11)
    with torch.no_grad(), fast_paths(False):
        plain = model.logits(volume[None])[0]
    reference = float64_copy(model).logits(float64_copy(volume)[None])[0].detach()
    assert_close_to_reference(model.predict_volume(volume, labels=False), plain, reference)
    assert independent_samples(model._predictor)  # windows may be micro-batched


@pytest.mark.parametrize('mode', ['gaussian', 'constant'])
def test_sliding_windows_equal_whole_volume_where_each_window_holds_the_receptive_field(mode):
    # depth 40, window 24, overlap 0.5 -> step 12: windows [0, 24), [12, 36), [16, 40); the
    # other axes are one window each. A window's output is the whole-volume output wherever the
    # voxel's receptive field (radius 4) stays inside the window or meets a volume border;
    # blending averages the windows covering a voxel, so it is exact only where all of them are.
    assert window_starts(40, 24, 12) == [0, 12, 16]
    roi = (24, 12, 10)
    model = _eval_segmentor(roi=roi, mode=mode)
    reference = float64_copy(model)
    volume = torch.randn(2, 40, 12, 10)
    with torch.no_grad():
        whole = reference.logits(float64_copy(volume)[None])[0]
        windows = sliding_window_inference(float64_copy(volume)[None], roi, 1,
                                           reference._predictor, overlap=0.5, mode=mode)[0]
    error = (windows - whole).abs().amax(dim=(0, 2, 3))  # per depth index
    exact = torch.zeros(40, dtype=torch.bool)
    exact[0:12] = exact[24:32] = exact[36:40] = True  # hand-derived from the windows above
    scale = whole.abs().max()
    assert error[exact].max() <= 1e-12 * scale  # float64 blending of identical values
    # within 4 voxels of an inner window edge a window sees zero padding instead of data (at
    # a Gaussian window's edge with weight ~exp(-8) ~ 3e-4 of its centre's)
    assert (error[~exact] > 1e-9 * scale).all()
    # the segmentor's float32 path blends the same windows: float32 rounding of the reference
    with torch.no_grad(), fast_paths(False):
        plain = sliding_window_inference(volume[None], roi, 1, model._predictor, overlap=0.5,
                                         mode=mode, fast=False)[0]
    assert_close_to_reference(model.predict_volume(volume, labels=False), plain, windows)
