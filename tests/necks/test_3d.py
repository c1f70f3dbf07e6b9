"""3D necks in a model: FPN and ASPP on a random 3D encoder pyramid train one optimizer step."""
import pytest
import torch
from torch import nn

from densekit.layers import ConvNormAct
from densekit.necks import ASPP, FPN
from tests.helpers.numerics import torch_threads


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    with torch_threads(1):
        yield


class TinyEncoder3d(nn.Module):
    """Three strided 3D stages: (N, 1, D, H, W) -> maps at strides 2, 4, 8."""

    def __init__(self, widths=(4, 8, 12)):
        super().__init__()
        chans = (1, *widths)
        self.stages = nn.ModuleList(
            ConvNormAct(3, chans[i], chans[i + 1], 3, stride=2, padding=1,
                        norm_cfg=dict(type='BN'))
            for i in range(len(widths)))

    def forward(self, x):
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


def test_3d_fpn_and_aspp_train_one_step():
    torch.manual_seed(0)
    encoder = TinyEncoder3d()
    aspp = ASPP([4, 8, 12], 12, dilations=(1, 2, (1, 3, 3)), norm_cfg=dict(type='BN'),
                spatial_dims=3)
    fpn = FPN([4, 8, 12], 6, num_outs=4, add_extra_convs='on_output',
              norm_cfg=dict(type='BN'), act_cfg=dict(type='ReLU'), spatial_dims=3)
    head = nn.Conv3d(6, 2, 1)
    model = nn.ModuleList([encoder, aspp, fpn, head])
    volume = torch.randn(2, 1, 16, 24, 20)
    target = (volume > 0).long()[:, 0, ::2, ::2, ::2]

    def loss_fn():
        outs = fpn(aspp(encoder(volume)))
        assert [tuple(o.shape[2:]) for o in outs] == [(8, 12, 10), (4, 6, 5), (2, 3, 3),
                                                      (1, 2, 2)]
        coarse = sum(o.square().mean() for o in outs[1:])
        return nn.functional.cross_entropy(head(outs[0]), target) + 0.01 * coarse

    optim = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = loss_fn()
    optim.zero_grad()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in model.parameters())
    optim.step()
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == len(before)
    with torch.no_grad():
        assert loss_fn() < loss  # the step went downhill on this batch
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(loss_fn())
