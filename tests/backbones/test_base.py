"""PyramidBackbone: arch look-up, argument checks, shape contract, freezing."""
import pytest
import torch
from torch import nn

from densekit.backbones.base import PyramidBackbone


class _Toy(PyramidBackbone):
    arch_settings = {'a': dict(depths=[1, 1, 1, 1], widths=[4, 8, 16, 32])}
    arch_defaults = {'extra': 7}

    def __init__(self, arch='a', **kwargs):
        super().__init__(arch, **kwargs)
        f = self.factory
        self.stem = f.conv(self.in_channels, self.widths[0], 4, stride=4)
        self.stages = nn.ModuleList(
            [f.norm('BN', self.widths[0])[1]]
            + [f.conv(self.widths[i - 1], self.widths[i], 2, stride=2) for i in range(1, 4)])
        self.add_out_norms(lambda c: f.norm('BN', c)[1])
        self.freeze_stages()


@pytest.mark.parametrize('spatial_dims,size', [(2, (97, 131)), (3, (33, 35, 37))])
def test_levels_follow_out_indices_and_strides(spatial_dims, size):
    net = _Toy(out_indices=(-1, 1), spatial_dims=spatial_dims, in_channels=2)
    assert net.out_channels == [32, 8] and net.strides == [32, 8]
    outs = net(torch.rand(2, 2, *size))
    assert len(outs) == 2
    for out, ch, stride in zip(outs, net.out_channels, net.strides):
        assert out.shape[:2] == (2, ch)
        assert tuple(out.shape[2:]) == tuple(s // stride for s in size)


def test_arch_dict_takes_defaults_and_rejects_unknown_keys():
    net = _Toy(arch=dict(depths=[1, 1, 1, 1], widths=[2, 4, 6, 8]))
    assert net.arch['extra'] == 7 and net.out_channels == [2, 4, 6, 8]
    with pytest.raises(ValueError, match=r"unknown keys \['bogus'\]"):
        _Toy(arch=dict(depths=[1, 1, 1, 1], widths=[2, 4, 6, 8], bogus=1))
    with pytest.raises(ValueError, match='one entry per stage'):
        _Toy(arch=dict(depths=[1, 1], widths=[2, 4, 6, 8]))


@pytest.mark.parametrize('kwargs,match', [
    (dict(arch='nope'), r"arch='nope'.*\['a'\]"),
    (dict(out_indices=(4,)), 'out_indices'),
    (dict(out_indices=(1, -3)), 'twice'),
    (dict(spatial_dims=1), 'spatial_dims'),
    (dict(in_channels=0), 'in_channels'),
    (dict(frozen_stages=5), 'frozen_stages'),
    (dict(norm_eval='yes'), 'norm_eval'),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _Toy(**kwargs)


def test_input_checks_name_the_problem():
    net = _Toy()
    with pytest.raises(ValueError, match='4D NCHW'):
        net(torch.rand(1, 3, 8, 8, 8))
    with pytest.raises(ValueError, match='in_channels=3'):
        net(torch.rand(1, 1, 64, 64))
    with pytest.raises(ValueError, match='smaller than the deepest'):
        net(torch.rand(1, 3, 16, 64))


def test_frozen_stages_and_norm_eval():
    net = _Toy(frozen_stages=1, norm_eval=True).train()
    assert not any(p.requires_grad for p in net.stem.parameters())
    assert not any(p.requires_grad for p in net.stages[0].parameters())
    assert all(p.requires_grad for p in net.stages[1].parameters())
    assert not net.stages[0].training and net.stages[1].training
    assert not net.out_norms['3'].training  # norm_eval keeps every BN in eval mode
    before = net.out_norms['3'].running_mean.clone()
    net(torch.rand(2, 3, 64, 64))
    assert torch.equal(before, net.out_norms['3'].running_mean)


def test_drop_path_rates_rise_linearly():
    net = _Toy(arch=dict(depths=[2, 1, 1, 1], widths=[2, 2, 2, 2]))
    rates = net.drop_path_rates(0.4)
    assert [len(r) for r in rates] == [2, 1, 1, 1]
    assert sum(rates, []) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match='drop_path_rate'):
        net.drop_path_rates(1.5)
