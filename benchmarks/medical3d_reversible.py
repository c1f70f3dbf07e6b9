"""``densekit bench medical3d-memory``: training memory of the 3D U-Net with a residual encoder,
with activation checkpointing, and with reversible blocks.

Every row is one training step (forward, Dice + CE loss with deep supervision, backward) of a
U-Net (tiny widths 8-16-32-64, 1 input channel, 3 classes) on a batch of 2 patches of 64^3
(32^3 with ``--quick``). The "peer" columns are the plain residual U-Net measured alternately
in the same process, so ``ratio`` is the time relative to it and the MiB columns compare peak
tensor memory (:func:`~benchmarks.harness.peak_memory_mb`: on CPU, the running total of the
profiler's allocation events).

* residual: ``ResUNetEncoder`` with 3 residual blocks per stage (the plain U-Net itself);
* residual + with_cp: the same, with activation checkpointing in encoder and decoder;
* reversible: ``RevUNetEncoder`` (a strided residual block + 2 reversible couplings of mobile
  inverted bottlenecks, expansion 4, per stage: the same number of blocks), plain decoder;
* reversible + decoder with_cp: the decoder checkpointed as well;
* reversible, 4 rev/stage: twice the couplings, to show that the memory does not grow with
  the depth of the reversible part.
"""
from __future__ import annotations

from typing import Callable, List, Tuple

import torch
from torch import Tensor, nn

from benchmarks.harness import Row, peak_memory_mb, suite, time_pair

__all__ = ['bench_medical3d_memory']

WIDTHS = (8, 16, 32, 64)
NUM_CLASSES = 3


class _UNet(nn.Module):
    def __init__(self, encoder: nn.Module, decoder_cp: bool) -> None:
        super().__init__()
        from densekit.tasks.medical3d.unet import UNetDecoderHead

        self.encoder = encoder
        self.decoder = UNetDecoderHead(list(WIDTHS), NUM_CLASSES, with_cp=decoder_cp)

    def forward(self, x: Tensor) -> List[Tensor]:
        return self.decoder(self.encoder(x), all_scales=True)


def _models() -> List[Tuple[str, nn.Module]]:
    from densekit.tasks.medical3d.reversible import RevUNetEncoder
    from densekit.tasks.medical3d.unet import ResUNetEncoder

    def build(name: str, make: Callable[[], nn.Module], decoder_cp: bool) -> Tuple[str, nn.Module]:
        torch.manual_seed(0)
        return name, _UNet(make(), decoder_cp).train()

    return [
        build('residual (3 blocks/stage)',
              lambda: ResUNetEncoder(1, widths=WIDTHS, depths=(3,) * 4), False),
        build('residual + with_cp',
              lambda: ResUNetEncoder(1, widths=WIDTHS, depths=(3,) * 4, with_cp=True), True),
        build('reversible (1 res + 2 rev/stage)',
              lambda: RevUNetEncoder(1, widths=WIDTHS, depths=(2,) * 4), False),
        build('reversible + decoder with_cp',
              lambda: RevUNetEncoder(1, widths=WIDTHS, depths=(2,) * 4), True),
        build('reversible, 4 rev/stage',
              lambda: RevUNetEncoder(1, widths=WIDTHS, depths=(4,) * 4), False),
    ]


def _step(model: nn.Module, x: Tensor, target: Tensor) -> Callable[[], None]:
    from densekit.tasks.medical3d.losses import DiceCELoss

    loss_fn = DiceCELoss(batch_dice=True)

    def run() -> None:
        model.zero_grad(set_to_none=True)
        losses = loss_fn(model(x), target)
        sum(losses.values()).backward()

    return run


@suite('medical3d-memory')
def bench_medical3d_memory(repeats: int = 5, quick: bool = False) -> List[Row]:
    """Peak memory and time of a U-Net training step: residual, checkpointed, reversible."""
    size = 32 if quick else 64
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, size, size, size, generator=gen)
    target = (x[:, 0] > 0.5).long() + (x[:, 0] > 1.5).long()
    models = _models()
    base_name, base = models[0]
    base_step = _step(base, x, target)
    base_mem = peak_memory_mb(base_step)
    rows = []
    for name, model in models:
        step = _step(model, x, target)
        mem = base_mem if model is base else peak_memory_mb(step)
        t, t_base = time_pair(step, None if model is base else base_step, repeats=repeats)
        params = sum(p.numel() for p in model.parameters())
        rows.append(Row(f'{name} {size}^3 x2 fwd+bwd', t, t_base if t_base else t, mem,
                        base_mem, extra={'params': f'{params / 1e3:.1f}k',
                                         'memory vs residual': f'{mem / base_mem:.2f}'}))
    return rows
