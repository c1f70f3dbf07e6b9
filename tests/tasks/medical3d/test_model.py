"""3D U-Net: STU-Net presets and blocks, deep supervision, loss vs MONAI, necks, checkpointing."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.structures import BaseDataElement
from torch import nn

import densekit  # noqa: F401
from densekit.tasks.medical3d import (
    ARCH_SETTINGS,
    DiceCELoss,
    ResBlock,
    ResUNetEncoder,
    UNetDecoderHead,
    UpConcat,
    deep_supervision_weights,
)
from densekit.tasks.medical3d.losses import soft_dice
from tests.conftest import REPO

CFG_DIR = REPO / 'configs' / 'medical3d'


def test_presets_follow_stu_net():
    assert ARCH_SETTINGS['small']['widths'] == (16, 32, 64, 128, 256, 256)
    assert ARCH_SETTINGS['base']['widths'] == (32, 64, 128, 256, 512, 512)
    assert ARCH_SETTINGS['large'] == dict(widths=(64, 128, 256, 512, 1024, 1024), depths=(2,) * 6)
    assert ARCH_SETTINGS['huge'] == dict(widths=(96, 192, 384, 768, 1536, 1536), depths=(3,) * 6)
    enc = ResUNetEncoder(1, arch='base')
    assert len(enc.stages) == 6 and enc.total_stride == (32, 32, 32)  # 5 downsamplings
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv3d)]
    assert all(c.kernel_size in ((3, 3, 3), (1, 1, 1)) for c in convs)
    short = ResUNetEncoder(1, arch='small', num_stages=4)
    assert short.widths == (16, 32, 64, 128) and short.total_stride == (8, 8, 8)
    with pytest.raises(ValueError, match='arch'):
        ResUNetEncoder(1, arch='giant')
    with pytest.raises(ValueError, match='total stride'):
        ResUNetEncoder(1, arch='tiny')(torch.zeros(1, 1, 12, 16, 16))


def test_res_block_is_the_stu_net_block():
    torch.manual_seed(0)
    block = ResBlock(3, 4, 8, stride=2).eval()
    x = torch.randn(2, 4, 8, 10, 6)
    c1, c2, sc = block.conv1, block.conv2, block.shortcut
    y = F.leaky_relu(F.instance_norm(c1.conv(x), weight=c1.norm.weight, bias=c1.norm.bias), 0.01)
    y = F.instance_norm(c2.conv(y), weight=c2.norm.weight, bias=c2.norm.bias)
    expected = F.leaky_relu(y + sc.conv(x), 0.01)
    assert sc.conv.kernel_size == (1, 1, 1) and sc.conv.stride == (2, 2, 2)
    assert torch.allclose(block(x), expected, atol=1e-5)
    assert ResBlock(3, 8, 8).shortcut is None  # identity shortcut when the shape is kept


def test_upsampling_is_nearest_then_1x1_conv():
    torch.manual_seed(0)
    up = UpConcat(3, 6, 4)
    x, skip = torch.randn(1, 6, 3, 4, 5), torch.randn(1, 4, 6, 8, 10)
    conv = up.proj.conv
    stu = conv(F.interpolate(x, scale_factor=2, mode='nearest'))  # STU-Net's order
    out = up(x, skip)
    assert torch.allclose(out[:, :4], stu, atol=1e-6) and torch.equal(out[:, 4:], skip)


def test_deep_supervision_outputs_and_nnunet_weights():
    head = UNetDecoderHead([8, 16, 32, 64], 3)
    feats = [torch.randn(2, c, 32 // 2 ** i, 32 // 2 ** i, 16 // 2 ** i)
             for i, c in enumerate([8, 16, 32, 64])]
    outs = head.train()(feats)
    assert [tuple(o.shape[2:]) for o in outs] == [(32, 32, 16), (16, 16, 8), (8, 8, 4)]
    assert tuple(head.eval()(feats).shape) == (2, 3, 32, 32, 16)
    w = deep_supervision_weights(3)  # nnU-Net: 1, 1/2, (1/4 -> 0), normalised
    assert w == pytest.approx([2 / 3, 1 / 3, 0.0])


def test_dice_ce_loss_matches_monai():
    monai_losses = pytest.importorskip('monai.losses')
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 9, 10), torch.randint(0, 3, (2, 8, 9, 10))
    ours = DiceCELoss(batch_dice=True)(logits, target)
    ref = monai_losses.DiceCELoss(include_background=False, to_onehot_y=True, softmax=True,
                                  batch=True, smooth_nr=1e-5, smooth_dr=1e-5)
    assert float(ours['loss_dice'] + ours['loss_ce']) == pytest.approx(
        float(ref(logits, target[:, None])), rel=1e-5)
    # deep supervision: weighted sum over outputs with nearest-downsampled targets
    low = torch.randn(2, 3, 4, 5, 5)
    both = DiceCELoss()([logits, low, torch.randn(2, 3, 2, 3, 3)], target)
    t_low = F.interpolate(target[:, None].float(), size=(4, 5, 5), mode='nearest')[:, 0].long()
    expected = 2 / 3 * (1 - soft_dice(logits, target).mean()) + \
        1 / 3 * (1 - soft_dice(low, t_low).mean())
    assert float(both['loss_dice']) == pytest.approx(float(expected), rel=1e-5)


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    x = torch.randn(1, 1, 16, 16, 16)
    grads = []
    for with_cp in (False, True):
        torch.manual_seed(1)
        enc, head = ResUNetEncoder(1, arch='tiny', with_cp=with_cp), \
            UNetDecoderHead([8, 16, 32, 64], 2, with_cp=with_cp)
        sum(o.square().mean() for o in head(enc(x), all_scales=True)).backward()
        grads.append(torch.cat([p.grad.flatten() for p in [*enc.parameters(),
                                                           *head.parameters()]]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


@pytest.mark.parametrize('name', ['resunet-fpn-tiny', 'resunet-aspp-tiny'])
def test_3d_necks_plug_in_by_config_and_train(name):
    cfg = Config.fromfile(str(CFG_DIR / f'{name}_1xb2-600i_phantoms-48x48x48.py'))
    cfg.model.test_cfg.roi_size = (16, 16, 16)
    init_default_scope('densekit')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert type(model.neck).__name__ in ('FPN', 'ASPP') and model.neck.spatial_dims == 3
    x = torch.randn(2, 2, 16, 16, 16)
    target = (x[:, 0] > 0.3).long() + (x[:, 1] > 1.2).long()
    samples = [BaseDataElement(gt_seg=t) for t in target]
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(3):
        loss = sum(model(x, samples, mode='loss').values())
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    model.eval()
    labels = model.predict_volume(torch.randn(2, 20, 18, 16))
    assert labels.shape == (20, 18, 16) and labels.dtype == torch.uint8


def test_mirror_tta_averages_flipped_logits():
    cfg = Config.fromfile(str(CFG_DIR / 'resunet-tiny_1xb2-600i_phantoms-48x48x48.py'))
    cfg.model.test_cfg.update(roi_size=(16, 16, 16), mirror_axes=(0, 2))
    init_default_scope('densekit')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    x = torch.randn(1, 2, 16, 16, 16)
    with torch.no_grad():
        expected = sum(torch.flip(model.logits(torch.flip(x, d)), d)
                       for d in ([], [2], [4], [2, 4])) / 4
        assert torch.allclose(model._predictor(x), expected, atol=1e-5)
        logits = model.predict_volume(x[0], labels=False)
    assert torch.allclose(logits, expected[0], atol=1e-4)  # one window: blending is exact
