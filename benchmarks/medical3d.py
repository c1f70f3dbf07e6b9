"""``densekit bench medical3d``: densekit's sliding window against MONAI's, same network.

Rows (Gaussian blending, 64^3 windows, overlap 0.5, the same window batch for both):

* MONAI ``DynUNet`` (filters 16-32-64-128, instance norm, LeakyReLU) on a 128^3 volume (window
  batches of 4, MONAI tutorials' setting, and of 1) and on an anisotropic 64 x 160 x 128 volume:
  densekit's ``sliding_window_inference`` vs MONAI's under ``torch.no_grad``; time, peak memory
  and the largest output difference. DynUNet is MONAI's class, which densekit cannot vouch
  for, so these rows opt in to the measured window split (``micro_batch='measure'``);
* densekit's ``ResUNetEncoder`` + ``UNetDecoderHead`` (16-32-64-128) on 128^3: the same
  comparison for a network with densekit's block-level fast path;
* labels on 256^3 with 8 classes: ``sliding_window_labels`` vs MONAI + ``argmax`` with a light
  two-layer network (the row is about the blending buffers, which dominate there): peak memory
  and label agreement.

MONAI is a test-only dependency (``pip install -e .[test]``); it is imported when the suite runs.
"""
from __future__ import annotations

from typing import Callable, List, Tuple

import torch
from torch import Tensor, nn

from benchmarks.harness import Row, peak_memory_mb, suite, time_pair

__all__ = ['bench_medical3d']


def _randomise_norms(net: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial affine parameters for every instance norm (fresh ones are 1 and 0)."""
    gen = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, nn.modules.instancenorm._InstanceNorm) and module.affine:
            with torch.no_grad():
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.2)
    return net.eval()


def _dynunet(out_channels: int) -> nn.Module:
    from monai.networks.nets import DynUNet

    torch.manual_seed(0)
    return _randomise_norms(DynUNet(3, 1, out_channels, kernel_size=[3, 3, 3, 3],
                                    strides=[1, 2, 2, 2], upsample_kernel_size=[2, 2, 2],
                                    filters=[16, 32, 64, 128],
                                    norm_name=('INSTANCE', {'affine': True})))


class _ResUNet(nn.Module):
    per_sample_eval = True  # densekit blocks; the forward below treats samples independently

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        from densekit.tasks.medical3d.unet import ResUNetEncoder, UNetDecoderHead

        torch.manual_seed(0)
        widths = [16, 32, 64, 128]
        self.encoder = ResUNetEncoder(1, widths=widths, depths=[1] * 4)
        self.decoder = UNetDecoderHead(widths, out_channels)
        _randomise_norms(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


class _Light(nn.Module):
    """Two convolutions: what is measured is the blending, not the network."""

    per_sample_eval = True

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.LeakyReLU(0.01),
                                  nn.Conv3d(8, out_channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def _pair(densekit_fn: Callable[[], Tensor], monai_fn: Callable[[], Tensor], repeats: int
          ) -> Tuple[float, float, float, float, Tensor, Tensor]:
    out_d, out_m = densekit_fn(), monai_fn()
    t_d, t_m = time_pair(densekit_fn, monai_fn, repeats=repeats, warmup=0)
    return t_d, t_m, peak_memory_mb(densekit_fn), peak_memory_mb(monai_fn), out_d, out_m


@suite('medical3d')
def bench_medical3d(repeats: int = 5, quick: bool = False) -> List[Row]:
    """Sliding-window inference: densekit vs MONAI (see the module docstring)."""
    try:
        from monai.inferers import sliding_window_inference as monai_swi
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise RuntimeError('the medical3d benchmark compares against MONAI: '
                           'pip install -e .[test]') from err
    from densekit.windowed.engine import (
        sliding_window_inference,
        sliding_window_labels,
    )

    roi, overlap = (32,) * 3 if quick else (64,) * 3, 0.5
    big = 48 if quick else 128
    aniso = (1, 1, big // 2, big * 5 // 4, big)
    # name, network, input shape, sw_batch_size, micro_batch
    cases = [(f'DynUNet {big}^3, sw_batch 4', _dynunet(2), (1, 1, big, big, big), 4, 'measure'),
             (f'DynUNet {big}^3, sw_batch 1', _dynunet(2), (1, 1, big, big, big), 1, 'measure'),
             (f'DynUNet {"x".join(map(str, aniso[2:]))}, sw_batch 4', _dynunet(2), aniso, 4,
              'measure'),
             (f'ResUNet {big}^3, sw_batch 4', _ResUNet(2), (1, 1, big, big, big), 4, 'auto')]
    rows = []
    gen = torch.Generator().manual_seed(1)
    for name, net, shape, sw, micro_batch in cases:
        x = torch.randn(shape, generator=gen)

        def densekit_fn(x: Tensor = x, net: nn.Module = net, sw: int = sw,
                        micro_batch: str = micro_batch) -> Tensor:
            return sliding_window_inference(x, roi, sw, net, overlap=overlap, mode='gaussian',
                                            micro_batch=micro_batch)

        def monai_fn(x: Tensor = x, net: nn.Module = net, sw: int = sw) -> Tensor:
            with torch.no_grad():
                return monai_swi(x, roi, sw, net, overlap=overlap, mode='gaussian')

        t_d, t_m, m_d, m_m, out_d, out_m = _pair(densekit_fn, monai_fn, repeats)
        ref = out_m.as_tensor() if hasattr(out_m, 'as_tensor') else out_m
        diff = float((out_d - ref).abs().max())
        rows.append(Row(name, t_d, t_m, m_d, m_m, extra={
            'max abs diff': f'{diff:.1e}',
            'max abs diff / max abs output': f'{diff / float(ref.abs().max()):.1e}'}))
        print(f'  {name}: {t_d:.2f} s vs {t_m:.2f} s', flush=True)
    # labels: slab-by-slab argmax vs the full 8-class float volume
    side = 64 if quick else 256
    net = _Light(8).eval()
    x = torch.randn((1, 1, side, side, side), generator=gen)

    def labels_d() -> Tensor:
        return sliding_window_labels(x, roi, 4, net, overlap=overlap, mode='gaussian')

    def labels_m() -> Tensor:
        with torch.no_grad():
            return monai_swi(x, roi, 4, net, overlap=overlap, mode='gaussian').argmax(1)

    t_d, t_m, m_d, m_m, lab_d, lab_m = _pair(labels_d, labels_m, max(1, repeats // 2))
    agree = float((lab_d.long() == lab_m.long()).float().mean())
    rows.append(Row(f'labels {side}^3, 8 classes, sw_batch 4', t_d, t_m, m_d, m_m,
                    extra={'max abs diff': f'labels equal: {agree:.6f}'}))
    return rows
