"""Benchmark suite ``piip``: compute, parameters and CPU time of PIIP vs a single-branch ViT.

For the 3-branch (TSB) and 2-branch CPU configs in ``configs/_base_/models/`` it reports

* FLOPs (mmengine's ``FlopAnalyzer``, fvcore convention: one multiply-add = one FLOP) of the
  whole PIIP backbone (branches, interactions, merge, simple pyramid) and of the baseline, the
  config's ``single_branch_baseline`` (the largest ViT at the full resolution) followed by the
  same simple pyramid, i.e. a ViTDet-style backbone;
* ``FLOPs ratio`` = PIIP / baseline (the paper's claim: 40-60%) and ``backbone ratio`` =
  PIIP's branches + interactions / the bare baseline ViT (merge and pyramids excluded);
* parameters, and the median CPU forward time of PIIP (``densekit s``) and of the baseline
  (``peer s``).

The deformable attention's bilinear sampling (``aten::grid_sampler``, 4 per sampled value) is
counted by mmengine; its weighted sum over the sampled points (element-wise mul + sum, which
fvcore-style counters skip) is added analytically: ``queries x points x value width`` per
injector, reported in the ``analytic GFLOPs`` column.

Run: ``python tools/benchmark.py piip`` (or ``densekit bench piip``).
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from benchmarks.harness import Row, peak_memory_mb, suite, time_pair

CONFIG_DIR = os.path.join(os.path.dirname(__file__), '..', 'configs', '_base_', 'models')
CONFIGS = (('piip-3branch-tsb', 'piip_3branch_tsb_cpu.py'), ('piip-2branch', 'piip_2branch_cpu.py'))


class ViTWithPyramid(nn.Module):
    """Baseline: a single backbone's last map followed by the PIIP simple pyramid."""

    def __init__(self, backbone: nn.Module, channels: int) -> None:
        super().__init__()
        from densekit.backbones.piip import PIIPSimplePyramid

        self.backbone = backbone
        self.pyramid = PIIPSimplePyramid(channels)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """``(B, 3, H, W)`` -> four pyramid maps."""
        feat = self.backbone(x)[-1]
        return self.pyramid(feat, image_hw=(int(x.shape[-2]), int(x.shape[-1])))


def deform_weighting_flops(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of the deformable attentions' weighted sums (not counted by mmengine).

    Each injector call costs ``batch x queries x points x levels x value width``.
    """
    from densekit.backbones.piip_interaction import PIIPInjector

    total = [0]

    def hook(module: PIIPInjector, args: tuple, _out: torch.Tensor) -> None:
        query = args[0]
        attn = module.attn
        value_dim = attn.value_proj.out_features
        total[0] += query.shape[0] * query.shape[1] * attn.num_points * attn.num_levels \
            * value_dim

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, PIIPInjector)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total[0]


def count_flops(model: nn.Module, x: torch.Tensor) -> Tuple[int, Dict[str, int], List[str]]:
    """Total FLOPs, per-top-level-module FLOPs and the op types mmengine did not count."""
    from mmengine.analysis import FlopAnalyzer

    analyzer = FlopAnalyzer(model, inputs=(x,))
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    by_module = analyzer.by_module()
    top = {k: v for k, v in by_module.items() if k and '.' not in k}
    return analyzer.total(), top, sorted(analyzer.unsupported_ops())


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_pair(config_file: str) -> Tuple[nn.Module, nn.Module, int]:
    """Build (PIIP, baseline ViT + pyramid, input size) from a PIIP model config."""
    from mmengine.config import Config

    from densekit.registry import MODELS

    cfg = Config.fromfile(config_file)
    piip = MODELS.build(cfg.backbone)
    base = MODELS.build(cfg.single_branch_baseline)
    baseline = ViTWithPyramid(base, piip.out_channels[0])
    piip.init_weights()
    base.init_weights()
    piip.eval()
    baseline.eval()
    return piip, baseline, int(cfg.input_size)


def _measure(piip: nn.Module, baseline: nn.Module, x: torch.Tensor, repeats: int,
             quick: bool) -> Tuple[float, float, Optional[float], Optional[float]]:
    """Median forward times (alternating) and peak memory of PIIP and the baseline."""
    with torch.no_grad():
        t_piip, t_base = time_pair(lambda: piip(x), lambda: baseline(x),
                                   repeats=1 if quick else repeats)
        mem_piip = None if quick else peak_memory_mb(lambda: piip(x))
        mem_base = None if quick else peak_memory_mb(lambda: baseline(x))
    return t_piip, t_base, mem_piip, mem_base


@suite('piip')
def piip_suite(repeats: int = 5, quick: bool = False) -> List[Row]:
    """FLOPs, params and CPU forward time: PIIP configs vs the single-branch baseline."""
    rows: List[Row] = []
    notes = set()
    for case, fname in CONFIGS:
        piip, baseline, size = build_pair(os.path.join(CONFIG_DIR, fname))
        x = torch.rand(1, 3, size, size)
        with torch.no_grad():
            p_total, p_mod, p_unsup = count_flops(piip, x)
            b_total, b_mod, b_unsup = count_flops(baseline, x)
        extra_flops = deform_weighting_flops(piip, x)
        p_total += extra_flops
        notes.update(p_unsup)
        notes.update(b_unsup)
        p_backbone = p_mod.get('branches', 0) + p_mod.get('interactions', 0) + extra_flops
        b_backbone = b_mod.get('backbone', 0)

        t_piip, t_base, mem_piip, mem_base = _measure(piip, baseline, x, repeats, quick)
        rows.append(Row(
            case=f'{case} @{size}', densekit_s=t_piip, peer_s=t_base, densekit_mem_mb=mem_piip,
            peer_mem_mb=mem_base,
            extra={
                'PIIP GFLOPs': f'{p_total / 1e9:.3f}',
                'baseline GFLOPs': f'{b_total / 1e9:.3f}',
                'FLOPs ratio': f'{p_total / b_total:.1%}',
                'backbone ratio': f'{p_backbone / b_backbone:.1%}',
                'analytic GFLOPs': f'{extra_flops / 1e9:.4f}',
                'PIIP params M': f'{_params(piip) / 1e6:.2f}',
                'baseline params M': f'{_params(baseline) / 1e6:.2f}',
            }))
    print('baseline = single_branch_baseline ViT at full resolution + the same simple pyramid; '
          'peer s = its forward time. Ops mmengine did not count: '
          f'{", ".join(sorted(notes)) or "none"}', flush=True)
    return rows
