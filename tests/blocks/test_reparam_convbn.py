"""DilatedReparamBlock (train structure == deploy conv) and the conv+BN train/tune/deploy modes."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from densekit.blocks import (
    REPARAM_BRANCHES,
    DilatedReparamBlock,
    dilate_kernel,
    set_convbn_mode,
)
from densekit.layers import ConvNormAct
from densekit.registry import MODELS


def randomize_bn(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=gen))
                m.bias.copy_(torch.randn(m.num_features, generator=gen))
    return model


@pytest.mark.parametrize('spatial_dims,kernel,size', [(2, 13, (23, 17)), (2, 7, (9, 12)),
                                                      (2, 5, (6, 5)), (3, 7, (9, 8, 11)),
                                                      (3, 5, (5, 6, 7))])
def test_deploy_equals_training_structure(spatial_dims, kernel, size):
    torch.manual_seed(0)
    block = MODELS.build(dict(type='densekit.DilatedReparamBlock', spatial_dims=spatial_dims,
                              channels=6, kernel_size=kernel))
    assert len(block.branches) == len(REPARAM_BRANCHES[kernel][0])
    randomize_bn(block).eval()
    x = torch.randn(2, 6, *size)
    with torch.no_grad():
        ref = block(x)
        block.switch_to_deploy()
        out = block(x)
    assert block.deploy and not hasattr(block, 'branches')
    assert sum(p.numel() for p in block.parameters()) == 6 * kernel ** spatial_dims + 6
    assert out.shape == x.shape
    assert torch.allclose(out, ref, atol=1e-5)


def test_branch_sum_in_training_mode():
    torch.manual_seed(0)
    block = DilatedReparamBlock(2, 4, 7).train()
    x = torch.randn(3, 4, 10, 10)
    expected = block.lk_origin(x) + sum(b(x) for b in block.branches)
    assert torch.allclose(block(x), expected, atol=1e-6)
    block(x).sum().backward()
    assert all(b.conv.weight.grad.abs().sum() > 0 for b in block.branches)


def test_dilate_kernel_matches_dilated_conv():
    w = torch.randn(3, 1, 3, 3)
    x = torch.randn(1, 3, 12, 12)
    ref = F.conv2d(x, w, padding=4, dilation=4, groups=3)
    assert torch.allclose(F.conv2d(x, dilate_kernel(w, 4), padding=4, groups=3), ref, atol=1e-5)


def test_reparam_bad_arguments():
    with pytest.raises(ValueError, match='kernel_size'):
        DilatedReparamBlock(2, 4, 6)
    with pytest.raises(ValueError, match='no default branches'):
        DilatedReparamBlock(2, 4, 21)
    with pytest.raises(ValueError, match='spans'):
        DilatedReparamBlock(2, 4, 7, kernel_sizes=(5,), dilations=(2,))


def convbn_net(spatial_dims=2):
    f = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
    b = nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d
    return nn.Sequential(
        ConvNormAct(spatial_dims, 3, 8, 3, padding=1, norm_cfg=dict(type='BN')),
        nn.Sequential(f(8, 8, 3, padding=1, bias=False), b(8), nn.ReLU()),
        ConvNormAct(spatial_dims, 8, 4, 1, norm_cfg=dict(type='BN'), act_cfg=None))


@pytest.mark.parametrize('spatial_dims', [2, 3])
def test_convbn_modes_agree_in_eval(spatial_dims):
    torch.manual_seed(0)
    net = randomize_bn(convbn_net(spatial_dims)).eval()
    x = torch.randn(2, 3, *([7] * spatial_dims))
    with torch.no_grad():
        ref = net(x)
        outs = {}
        for mode in ('train', 'tune', 'deploy'):
            set_convbn_mode(net, mode)
            outs[mode] = net.eval()(x)
    for mode, out in outs.items():
        assert torch.allclose(out, ref, atol=1e-5), mode
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def test_tune_mode_freezes_bn_and_matches_frozen_bn_gradients():
    torch.manual_seed(0)
    unit = randomize_bn(ConvNormAct(2, 3, 5, 3, padding=1, norm_cfg=dict(type='BN')))
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=False)
    bn = nn.BatchNorm2d(5)
    conv.load_state_dict({'weight': unit.conv.weight.detach().clone()})
    bn.load_state_dict(unit.bn.state_dict())
    bn.eval()
    set_convbn_mode(unit, 'tune')
    unit.train()  # tune keeps the BN frozen anyway
    assert not unit.bn.training
    stats = unit.bn.running_mean.clone()
    x = torch.randn(4, 3, 9, 8)
    out = unit(x)
    ref = torch.relu(bn(conv(x)))
    assert torch.allclose(out, ref, atol=1e-5)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    assert torch.equal(unit.bn.running_mean, stats)  # statistics frozen
    assert torch.allclose(unit.conv.weight.grad, conv.weight.grad, atol=1e-4)
    assert torch.allclose(unit.bn.weight.grad, bn.weight.grad, atol=1e-4)
    assert torch.allclose(unit.bn.bias.grad, bn.bias.grad, atol=1e-4)
    # back to train: batch statistics again
    set_convbn_mode(unit, 'train')
    unit.train()
    assert unit.bn.training
    unit(x)
    assert not torch.equal(unit.bn.running_mean, stats)


def test_convbn_bad_mode():
    with pytest.raises(ValueError, match='mode'):
        set_convbn_mode(nn.Sequential(), 'fast')
