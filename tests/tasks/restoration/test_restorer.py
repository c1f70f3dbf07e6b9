"""Restorer, preprocessor and losses: value ranges, normalisation, modes, luma-only path."""
from __future__ import annotations

import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import BaseDataElement

from densekit.registry import MODELS
from densekit.tasks.restoration.color import rgb2ycbcr
from densekit.tasks.restoration.imresize import imresize_tensor
from densekit.tasks.restoration.losses import CharbonnierLoss, PixelL1Loss
from densekit.tasks.restoration.preprocessor import RestorationPreprocessor
from tests.restoration_threads import idle_threads  # noqa: F401

init_default_scope('densekit')
MEAN = (0.4488, 0.4371, 0.4040)


def _sample(gt: torch.Tensor, peak: float = 255.0, scale: int = 2) -> BaseDataElement:
    return BaseDataElement(gt_img=gt, metainfo=dict(max_value=peak, scale=scale))


def test_preprocessor_scales_by_bit_depth_and_normalises() -> None:
    pre = RestorationPreprocessor(mean=MEAN, std=(0.5, 0.5, 0.5))
    lq8 = torch.full((3, 2, 2), 255.0)
    lq16 = torch.full((3, 2, 2), 65535.0)
    out = pre(dict(inputs=[lq8, lq16], data_samples=[_sample(lq8, 255.0), _sample(lq16, 65535.)]))
    expected = (1 - torch.tensor(MEAN)) / 0.5
    torch.testing.assert_close(out['inputs'][:, :, 0, 0], expected.expand(2, 3))
    assert all(torch.equal(s.gt_img, torch.ones(3, 2, 2)) for s in out['data_samples'])
    torch.testing.assert_close(pre.denormalize(out['inputs']), torch.ones(2, 3, 2, 2))
    with pytest.raises(ValueError, match='same shape'):
        pre(dict(inputs=[lq8, torch.zeros(3, 4, 4)]))
    with pytest.raises(ValueError, match='std'):
        RestorationPreprocessor(std=(0.0, 1.0, 1.0))


def test_losses_known_values() -> None:
    pred, target = torch.zeros(1, 1, 2, 2), torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    assert PixelL1Loss()(pred, target).item() == pytest.approx(1.5)
    assert PixelL1Loss(loss_weight=2, reduction='sum')(pred, target).item() == pytest.approx(12)
    expected = sum((v * v + 1e-6) ** 0.5 for v in (0, 1, 2, 3)) / 4
    assert CharbonnierLoss()(pred, target).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match='reduction'):
        CharbonnierLoss(reduction='none')


def _edsr(**kw) -> torch.nn.Module:
    return MODELS.build(dict(
        type='Restorer', scale=2,
        data_preprocessor=dict(type='RestorationPreprocessor', mean=MEAN),
        backbone=dict(type='EDSRBody', channels=8, num_blocks=1),
        head=dict(type='PixelShuffleHead', in_channels=8, scale=2, **kw),
        pixel_loss=dict(type='PixelL1Loss')))


def test_modes_loss_predict_tensor() -> None:
    torch.manual_seed(0)
    model = _edsr()
    lq, gt = torch.rand(3, 6, 7) * 255, torch.rand(3, 12, 14) * 255
    data = model.data_preprocessor(dict(inputs=[lq], data_samples=[_sample(gt)]))
    out = model(data['inputs'], data['data_samples'], mode='tensor')
    assert out.shape == (1, 3, 12, 14)
    loss = model(data['inputs'], data['data_samples'], mode='loss')['loss_pix']
    assert loss.item() == pytest.approx((out - gt / 255).abs().mean().item(), rel=1e-5)
    pred = model(data['inputs'], data['data_samples'], mode='predict')[0].pred_img
    torch.testing.assert_close(pred, out[0].clamp(0, 1))
    with pytest.raises(ValueError, match='mode'):
        model(data['inputs'], mode='train')


def test_bicubic_input_skip_starts_at_matlab_bicubic() -> None:
    model = _edsr(input_skip='bicubic')
    image = torch.rand(1, 3, 9, 10, dtype=torch.float32)
    torch.testing.assert_close(model.restore(image, clamp=False), imresize_tensor(image, 2.0),
                               atol=1e-6, rtol=1e-6)


def test_luma_only_restores_y_and_upscales_chroma_bicubically() -> None:
    model = MODELS.build(dict(type='Restorer', scale=2, luma_only=True,
                              backbone=dict(type='FSRCNNBody', d=8, s=4, m=1),
                              head=dict(type='DeconvHead', in_channels=8, scale=2)))
    image = torch.rand(1, 3, 8, 10)
    out = model.restore(image, clamp=False)
    ycc_out, ycc_in = rgb2ycbcr(out), rgb2ycbcr(image)
    torch.testing.assert_close(ycc_out[:, 1:], imresize_tensor(ycc_in[:, 1:], 2.0), atol=1e-5,
                               rtol=1e-5)
    luma = model.head(model.backbone(ycc_in[:, :1]), None)
    torch.testing.assert_close(ycc_out[:, :1], luma, atol=1e-5, rtol=1e-5)


def test_bad_configs_raise() -> None:
    with pytest.raises(ValueError, match='scale'):
        MODELS.build(dict(type='Restorer', scale=0, backbone=dict(type='EDSRBody'),
                          head=dict(type='PixelShuffleHead', in_channels=64)))
    with pytest.raises(TypeError, match='backbone'):
        MODELS.build(dict(type='Restorer', backbone='EDSRBody', head=dict(type='DeconvHead',
                                                                         in_channels=4)))
