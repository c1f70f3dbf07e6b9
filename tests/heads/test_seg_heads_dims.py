"""Segmentation heads in 2D and 3D: ``spatial_dims`` checks, 3D heads built from 2D ones match
them on volumes constant along depth, odd-sized batch-1 volumes, and the drop-in details
checked against mmseg (init_cfg on the ASPP image pool, FPN strides, ConvModule attributes)."""
from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
import torch
from mmseg.models import decode_heads as peer

import densekit  # noqa: F401
from densekit.heads import ASPPHead, DepthwiseSeparableASPPHead, DUCHead, FCNHead, FPNHead
from densekit.heads.dims import pixel_shuffle
from tests.helpers.numerics import randomize_norms_

NORM = dict(type='BN')
TOL = 1e-10  # float64: the 3D head does the 2D head's arithmetic plus exact zeros

HEADS = {
    'fcn': (FCNHead, dict(in_channels=6, channels=4, num_classes=3, dilation=2)),
    'aspp': (ASPPHead, dict(in_channels=6, channels=4, num_classes=3, dilations=(1, 2, 3))),
    'dsaspp': (DepthwiseSeparableASPPHead,
               dict(in_channels=6, channels=4, num_classes=3, dilations=(1, 2),
                    c1_in_channels=3, c1_channels=2, in_index=1)),
    'fpn': (FPNHead, dict(in_channels=[3, 5, 4], in_index=[0, 1, 2], channels=4,
                          num_classes=3, feature_strides=(2, 4, 8))),
    'duc': (DUCHead, dict(in_channels=6, channels=4, num_classes=3, upsample_factor=2)),
}


def _inputs(name: str, hw: tuple, depth: int = 0, batch: int = 2) -> list:
    """Random maps ``(batch, C, *hw)`` for the head's levels; with ``depth`` they are repeated
    along a new depth axis (constant along depth)."""
    h, w = hw
    if name == 'fpn':
        maps = [torch.randn(batch, c, -(-h // s), -(-w // s), dtype=torch.float64)
                for c, s in ((3, 1), (5, 2), (4, 4))]
    elif name == 'dsaspp':
        maps = [torch.randn(batch, 3, h, w, dtype=torch.float64),
                torch.randn(batch, 6, -(-h // 4), -(-w // 4), dtype=torch.float64)]
    else:
        maps = [torch.randn(batch, 6, h, w, dtype=torch.float64)]
    if depth:
        maps = [m.unsqueeze(2).expand(-1, -1, depth, -1, -1).contiguous() for m in maps]
    return maps


def _lift(head2d: torch.nn.Module, head3d: torch.nn.Module, duc_factor: int = 0) -> None:
    """Load ``head2d``'s weights into ``head3d``: each 2D kernel becomes the middle depth slice
    of the 3D kernel (zeros elsewhere); DUC's classifier repeats its 2D sub-pixel logits for
    every depth offset."""
    sd2, sd3 = head2d.state_dict(), head3d.state_dict()
    assert sd2.keys() == sd3.keys()  # one implementation, the same state-dict keys
    lifted = {}
    for key, p2 in sd2.items():
        p3 = sd3[key]
        if duc_factor and key.startswith('conv_seg.'):
            r = duc_factor
            c = p2.shape[0] // r ** 2
            src = p2.reshape(c, 1, r * r, *p2.shape[1:]).expand(c, r, r * r, *p2.shape[1:])
            src = src.reshape(c * r ** 3, *p2.shape[1:])
            if p2.dim() == 4:
                p3 = torch.zeros_like(p3)
                p3[:, :, p3.shape[2] // 2] = src
            else:
                p3 = src.clone()
        elif p3.dim() == p2.dim() + 1:
            assert p3.shape[:2] + p3.shape[3:] == p2.shape, key
            p3 = torch.zeros_like(p3)
            p3[:, :, p3.shape[2] // 2] = p2
        else:
            assert p3.shape == p2.shape, key
            p3 = p2.clone()
        lifted[key] = p3
    head3d.load_state_dict(lifted)


@pytest.mark.parametrize('name', sorted(HEADS))
@pytest.mark.parametrize('depth', [1, 3])
def test_3d_head_matches_2d_head_constant_along_depth(name: str, depth: int) -> None:
    cls, kw = HEADS[name]
    torch.manual_seed(0)
    kw = dict(kw, norm_cfg=NORM, dropout_ratio=0.0)
    head2d = cls(**kw).double()
    head3d = cls(spatial_dims=3, **kw).double()
    randomize_norms_(head2d)
    _lift(head2d, head3d, duc_factor=kw.get('upsample_factor', 0) if name == 'duc' else 0)
    head2d.eval(), head3d.eval()
    inputs2d = _inputs(name, (9, 11))
    with torch.no_grad():
        want = head2d(inputs2d)
        got = head3d([m.unsqueeze(2).expand(-1, -1, depth, -1, -1).contiguous()
                      for m in inputs2d])
    out_depth = depth * kw['upsample_factor'] if name == 'duc' else depth
    assert got.shape == (*want.shape[:2], out_depth, *want.shape[2:])
    for z in range(out_depth):
        err = (got[:, :, z] - want).abs().max().item()
        assert err <= TOL * max(1.0, want.abs().max().item()), (name, z, err)


@pytest.mark.parametrize('name', ['fcn', 'aspp'])
@pytest.mark.parametrize('norm_cfg', [None, dict(type='GN', num_groups=2)])
def test_3d_head_odd_volume_batch_one_train_and_eval(name: str, norm_cfg: dict) -> None:
    """A batch-1 odd-sized volume trains (loss gradient reaches every parameter) and predicts.

    (With BatchNorm, batch-1 training fails on ASPP's pooled 1x1x1 branch, as in mmseg 2D.)"""
    cls, kw = HEADS[name]
    torch.manual_seed(0)
    head = cls(spatial_dims=3, norm_cfg=norm_cfg, **kw)
    x = torch.randn(1, 6, 5, 7, 9)
    head.train()
    out = head([x])
    assert out.shape == (1, 3, 5, 7, 9)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in head.parameters() if p.requires_grad)
    head.eval()
    with torch.no_grad():
        pred = head([x])
    assert pred.shape == (1, 3, 5, 7, 9) and torch.isfinite(pred).all()


def test_3d_heads_are_volumetric() -> None:
    head = ASPPHead(spatial_dims=3, in_channels=4, channels=4, num_classes=2, dilations=(1, 2),
                    norm_cfg=NORM)
    assert isinstance(head.conv_seg, torch.nn.Conv3d)
    assert isinstance(head.dropout, torch.nn.Dropout3d)
    assert isinstance(head.aspp.pool, torch.nn.AdaptiveAvgPool3d)
    assert isinstance(head.bottleneck.bn, torch.nn.BatchNorm3d)
    fpn = FPNHead(spatial_dims=3, **HEADS['fpn'][1])
    assert fpn.scale_heads[1][1].mode == 'trilinear'
    assert FPNHead(**HEADS['fpn'][1]).scale_heads[1][1].mode == 'bilinear'
    cat = FCNHead(spatial_dims=3, in_channels=[2, 3], in_index=[0, 1], channels=4,
                  num_classes=2, input_transform='resize_concat')
    out = cat([torch.randn(1, 2, 4, 6, 6), torch.randn(1, 3, 2, 3, 3)])
    assert out.shape == (1, 2, 4, 6, 6)


@pytest.mark.parametrize('name', sorted(HEADS))
@pytest.mark.parametrize('bad', [1, 4, True, '3', None])
def test_spatial_dims_must_be_2_or_3(name: str, bad: object) -> None:
    cls, kw = HEADS[name]
    with pytest.raises(ValueError, match='spatial_dims'):
        cls(spatial_dims=bad, **kw)


def test_pixel_shuffle_3d_layout() -> None:
    """3D sub-voxel layout: channel ``c*r^3 + a*r^2 + b*r + e`` goes to ``(r*z+a, r*y+b,
    r*x+e)``; in 2D it is torch's pixel_shuffle."""
    r, c = 2, 3
    x = torch.randn(2, c * r ** 3, 3, 4, 5)
    y = pixel_shuffle(x, r)
    assert y.shape == (2, c, 6, 8, 10)
    for a in range(r):
        for b in range(r):
            for e in range(r):
                idx = [k * r ** 3 + a * r * r + b * r + e for k in range(c)]
                assert torch.equal(y[:, :, a::r, b::r, e::r], x[:, idx])
    x2 = torch.randn(2, 12, 3, 4)
    assert torch.equal(pixel_shuffle(x2, 2), torch.nn.functional.pixel_shuffle(x2, 2))


# -- drop-in details against mmseg ------------------------------------------------------------

def _constant(conv: torch.nn.Module, value: float) -> bool:
    return bool((conv.weight == value).all())


@pytest.mark.parametrize('separable', [False, True])
def test_aspp_init_cfg_reaches_image_pool_as_in_mmseg(separable: bool) -> None:
    init_cfg = dict(type='Constant', val=0.5, layer='Conv2d')
    kw = dict(in_channels=8, channels=4, num_classes=3, dilations=(1, 2), init_cfg=init_cfg)
    if separable:
        kw.update(c1_in_channels=4, c1_channels=2)
        theirs = peer.DepthwiseSeparableASPPHead(**kw)
        ours = DepthwiseSeparableASPPHead(**kw)
    else:
        theirs, ours = peer.ASPPHead(**kw), ASPPHead(**kw)
    theirs.init_weights(), ours.init_weights()
    pairs = [(theirs.image_pool[1].conv, ours.image_pool.conv),
             (theirs.bottleneck.conv, ours.bottleneck.conv), (theirs.conv_seg, ours.conv_seg)]
    for mine, other in zip(ours.aspp_modules, theirs.aspp_modules):
        if separable and hasattr(other, 'depthwise_conv'):
            pairs += [(other.depthwise_conv.conv, mine.depthwise_conv.conv),
                      (other.pointwise_conv.conv, mine.pointwise_conv.conv)]
        else:
            pairs.append((other.conv, mine.conv))
    if separable:
        pairs.append((theirs.c1_bottleneck.conv, ours.c1_bottleneck.conv))
        for other, mine in zip(theirs.sep_bottleneck, ours.sep_bottleneck):
            pairs += [(other.depthwise_conv.conv, mine.depthwise_conv.conv),
                      (other.pointwise_conv.conv, mine.pointwise_conv.conv)]
    got = [_constant(mine, 0.5) for _, mine in pairs]
    want = [_constant(other, 0.5) for other, _ in pairs]
    assert got == want
    assert want[0]  # the pooled conv takes the requested init (the bottleneck does not)
    # the same in 3D with layer='Conv3d'
    head3d = ASPPHead(spatial_dims=3, in_channels=8, channels=4, num_classes=3, dilations=(1, 2),
                      init_cfg=dict(type='Constant', val=0.5, layer='Conv3d'))
    head3d.init_weights()
    assert _constant(head3d.image_pool.conv, 0.5) and not _constant(head3d.bottleneck.conv, 0.5)


@pytest.mark.parametrize('strides', [(4, 6, 16), (4, 8, 12, 40)])
def test_fpn_non_power_of_two_strides_match_mmseg(strides: tuple) -> None:
    n = len(strides)
    kw = dict(in_channels=[4] * n, in_index=list(range(n)), feature_strides=strides,
              channels=4, num_classes=3, norm_cfg=NORM, dropout_ratio=0.0)
    theirs, ours = peer.FPNHead(**kw).double(), FPNHead(**kw).double()
    want_steps = [max(1, int(np.log2(s) - np.log2(strides[0]))) for s in strides]
    assert [len([m for m in h if hasattr(m, 'conv')]) for h in ours.scale_heads] == want_steps
    assert [len(h) for h in ours.scale_heads] == [len(h) for h in theirs.scale_heads]
    randomize_norms_(theirs)
    ours.load_state_dict(theirs.state_dict())
    theirs.eval(), ours.eval()
    size = 48
    inputs = [torch.randn(1, 4, -(-size * strides[0] // s), -(-size * strides[0] // s),
                          dtype=torch.float64) for s in strides]
    with torch.no_grad():
        want, got = theirs(inputs), ours(inputs)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= TOL * max(1.0, want.abs().max().item())


def test_convmodule_attributes_match_mmseg() -> None:
    for kw in (dict(), dict(kernel_size=1), dict(dilation=3)):
        args = dict(in_channels=8, channels=4, num_classes=3, **kw)
        theirs, ours = peer.FCNHead(**args), FCNHead(**args)
        for attr in ('kernel_size', 'padding', 'stride', 'dilation', 'in_channels',
                     'out_channels', 'groups'):
            for other, mine in zip(theirs.convs, ours.convs):
                assert getattr(mine, attr) == getattr(other, attr), attr
            assert getattr(ours.conv_cat, attr) == getattr(theirs.conv_cat, attr), attr
        for other, mine in zip(theirs.convs, ours.convs):
            assert mine.conv.padding == other.conv.padding
    args = dict(in_channels=8, channels=4, num_classes=3, dilations=(1, 12, 24))
    theirs, ours = peer.ASPPHead(**args), ASPPHead(**args)
    assert len(ours.aspp_modules) == len(theirs.aspp_modules)
    for other, mine in zip(theirs.aspp_modules, ours.aspp_modules):
        assert mine.conv.dilation == other.conv.dilation
        assert mine.conv.padding == other.conv.padding
        assert mine.padding == other.padding
    assert ours.bottleneck.conv.weight.shape == theirs.bottleneck.conv.weight.shape
    assert ours.image_pool.conv.weight.shape == theirs.image_pool[1].conv.weight.shape
    # the aliases add no state-dict keys
    assert not any(k.startswith(('aspp_modules', 'image_pool', 'bottleneck'))
                   for k in ours.state_dict())


def test_2d_state_dict_keys_unchanged_by_spatial_dims() -> None:
    for name, (cls, kw) in HEADS.items():
        default, explicit = cls(**kw), cls(spatial_dims=2, **kw)
        assert list(default.state_dict()) == list(explicit.state_dict()), name
        assert list(cls(spatial_dims=3, **kw).state_dict()) == list(default.state_dict()), name


# -- medical demo overlay colours -------------------------------------------------------------

def test_medical_overlay_png_is_rgb_correct() -> None:
    """render_slices returns BGR for cv2: a PNG written through cv2 shows the label colours
    (given in RGB) unswapped when read by an RGB reader (Pillow)."""
    from io import BytesIO

    from PIL import Image

    from densekit.tasks.medical3d.viz import LABEL_COLOURS, render_slices

    image = np.zeros((12, 12, 12), np.float32)
    labels = np.zeros((12, 12, 12), np.int64)
    labels[3:9, 3:9, 3:9] = 2
    picture = render_slices(image, labels, np.eye(4), height=24, alpha=1.0)
    ok, png = cv2.imencode('.png', picture)
    assert ok
    rgb = np.asarray(Image.open(BytesIO(png.tobytes())).convert('RGB'))
    colours = {tuple(int(v) for v in px) for px in rgb.reshape(-1, 3)}
    assert tuple(int(v) for v in LABEL_COLOURS[2]) in colours
    assert tuple(int(v) for v in LABEL_COLOURS[2][::-1]) not in colours


def test_copy_keeps_aliases() -> None:
    head = ASPPHead(in_channels=4, channels=4, num_classes=2, dilations=(1, 2))
    clone = copy.deepcopy(head)
    assert clone.image_pool is clone.aspp.image_pool
