"""Segmentation heads against mmseg's, DUC's sub-pixel layout, the HDC backbone option."""
from __future__ import annotations

import pytest
import torch
from mmseg.models import decode_heads as peer

import densekit  # noqa: F401
from densekit.heads import DepthwiseSeparableASPPHead, DUCHead, FCNHead, FPNHead
from tests.helpers.numerics import randomize_norms_

NORM = dict(type='BN')


def _compare(peer_head: torch.nn.Module, ours: torch.nn.Module, inputs: list) -> None:
    randomize_norms_(peer_head)
    ours.load_state_dict(peer_head.state_dict())
    for mode in ('eval', 'train'):
        getattr(peer_head, mode)(), getattr(ours, mode)()
        torch.manual_seed(0)
        want = peer_head(inputs)
        torch.manual_seed(0)
        got = ours(inputs)
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


@pytest.mark.parametrize('size', [(9, 11), (97, 131)])
@pytest.mark.parametrize('concat_input', [True, False])
def test_fcn_head_matches_mmseg(size: tuple, concat_input: bool) -> None:
    kw = dict(in_channels=12, channels=8, num_classes=5, norm_cfg=NORM, dropout_ratio=0.0,
              concat_input=concat_input)
    _compare(peer.FCNHead(**kw), FCNHead(**kw), [torch.randn(1, 12, *size)])


@pytest.mark.parametrize('size', [(16, 20), (25, 33)])
def test_semantic_fpn_head_matches_mmseg(size: tuple) -> None:
    h, w = size
    kw = dict(in_channels=[8, 8, 8, 8], in_index=[0, 1, 2, 3], feature_strides=[4, 8, 16, 32],
              channels=8, num_classes=4, norm_cfg=NORM, dropout_ratio=0.0)
    feats = [torch.randn(2, 8, -(-h // 2**i), -(-w // 2**i)) for i in range(4)]
    _compare(peer.FPNHead(**kw), FPNHead(**kw), feats)


@pytest.mark.parametrize('strides', [(4, 6, 16), (4, 16, 8), (8, 12, 40)])
def test_semantic_fpn_head_takes_mmseg_strides_that_are_not_powers_of_two(strides: tuple) -> None:
    kw = dict(in_channels=[8, 8, 8], in_index=[0, 1, 2], feature_strides=list(strides),
              channels=8, num_classes=4, norm_cfg=NORM, dropout_ratio=0.0)
    feats = [torch.randn(2, 8, -(-96 // s), -(-80 // s)) for s in strides]
    _compare(peer.FPNHead(**kw), FPNHead(**kw), feats)


def test_semantic_fpn_head_rejects_strides_mmseg_rejects() -> None:
    kw = dict(in_channels=[8, 8], in_index=[0, 1], channels=8, num_classes=2)
    for strides in ([8, 4], [4]):
        for cls in (peer.FPNHead, FPNHead):  # both assert; densekit's also a ValueError
            with pytest.raises(AssertionError):
                cls(feature_strides=strides, **kw)
        with pytest.raises(ValueError, match='feature_strides'):
            FPNHead(feature_strides=strides, **kw)


@pytest.mark.parametrize('size', [(5, 7), (13, 17)])
def test_deeplabv3plus_head_matches_mmseg(size: tuple) -> None:
    kw = dict(c1_in_channels=4, c1_channels=6, in_channels=16, channels=8, num_classes=3,
              dilations=(1, 2, 3, 4), norm_cfg=NORM, in_index=1, dropout_ratio=0.0)
    feats = [torch.randn(2, 4, size[0] * 4, size[1] * 4), torch.randn(2, 16, *size)]
    _compare(peer.DepthwiseSeparableASPPHead(**kw), DepthwiseSeparableASPPHead(**kw), feats)


def test_duc_rearranges_subpixel_logits() -> None:
    torch.manual_seed(0)
    head = DUCHead(upsample_factor=4, num_convs=1, in_channels=6, channels=8, num_classes=3,
                   norm_cfg=NORM, dropout_ratio=0.0).eval()
    x = torch.randn(1, 6, 5, 7)
    out = head([x])
    assert out.shape == (1, 3, 20, 28)
    raw = head.conv_seg(head.convs(x))  # (1, 3 * 16, 5, 7)
    c, a, b, i, j = 2, 1, 3, 4, 6  # class c, sub-pixel (a, b) of cell (i, j)
    assert torch.allclose(out[0, c, 4 * i + a, 4 * j + b], raw[0, c * 16 + a * 4 + b, i, j])


def test_duc_trains_at_full_resolution() -> None:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    head = DUCHead(upsample_factor=8, in_channels=6, channels=8, num_classes=3, norm_cfg=NORM)
    sample = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 3, (1, 32, 40))))
    sample.set_metainfo(dict(img_shape=(32, 40), pad_shape=(32, 40)))
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    losses = []
    for _ in range(3):
        loss = head.loss([torch.randn(1, 6, 4, 5)], [sample], None)['loss_ce']
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))


def test_hdc_schedule_sets_cycled_dilations() -> None:
    from densekit.backbones.resnet_hdc import ResNetHDC

    net = ResNetHDC(depth=18, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                    hdc_dilations=(None, None, (1, 2), (5, 9)))
    assert [b.conv1.dilation[0] for b in net.layer3] == [1, 2]
    assert [b.conv2.padding[0] for b in net.layer4] == [5, 9]
    assert net.layer2[0].conv1.dilation == (1, 1)
    outs = net(torch.randn(1, 3, 67, 61))
    assert [tuple(o.shape[-2:]) for o in outs] == [(17, 16), (9, 8), (9, 8), (9, 8)]
    with pytest.raises(ValueError, match='one entry per stage'):
        ResNetHDC(depth=18, hdc_dilations=((1, 2),))
    with pytest.raises(ValueError, match=r'hdc_dilations\[3\]'):
        ResNetHDC(depth=18, hdc_dilations=(None, None, None, (0, 2)))


@pytest.mark.parametrize('cls,kwargs,match', [
    (FCNHead, dict(num_convs=-1), 'num_convs'),
    (FCNHead, dict(kernel_size=2), 'kernel_size'),
    (FPNHead, dict(in_channels=[8, 8], in_index=[0, 1], feature_strides=[4]), 'feature_strides'),
    (DUCHead, dict(upsample_factor=0), 'upsample_factor'),
])
def test_bad_head_arguments(cls: type, kwargs: dict, match: str) -> None:
    base = dict(in_channels=8, channels=8, num_classes=2)
    with pytest.raises(ValueError, match=match):
        cls(**{**base, **kwargs})
