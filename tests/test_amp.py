"""``--amp``: bfloat16 autocast training on the CPU, mmengine's AmpOptimWrapper on GPUs."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, List

import pytest
import torch
from mmengine.hooks import Hook

from densekit.registry import HOOKS
from tests.conftest import SEG_CONFIG, tiny_seg_options

RECORDED: dict = {}


@HOOKS.register_module(force=True)
class AmpProbeHook(Hook):
    """Record the dtype of the stem conv's and the classifier conv's outputs in training
    iterations, the losses, and the parameters' dtype."""

    def before_train(self, runner: Any) -> None:
        model = getattr(runner.model, 'module', runner.model)
        RECORDED.update(dtypes=[], losses=[], param_dtypes=set(), training=False)

        def record(module: torch.nn.Module, args: Any, out: Any) -> None:
            if RECORDED['training']:
                first = out if isinstance(out, torch.Tensor) else out[0]
                RECORDED['dtypes'].append(first.dtype)

        stem_conv = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d))
        stem_conv.register_forward_hook(record)
        # mmseg heads call self.forward() directly (no hooks): probe the classifier conv
        model.decode_head.conv_seg.register_forward_hook(record)
        RECORDED['model'] = model

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        RECORDED['training'] = True

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        RECORDED['training'] = False
        RECORDED['losses'].append(float(outputs['loss']))
        RECORDED['param_dtypes'] |= {p.dtype for p in RECORDED['model'].parameters()}


def _cfg_options(shapes_root: Path, iters: int) -> dict:
    opts = {}
    for item in tiny_seg_options(shapes_root, max_iters=iters, interval=iters):
        key, value = item.split('=', 1)
        opts[key] = value
    opts['model.data_preprocessor.size'] = (64, 64)
    for key in ('train_dataloader.batch_size', 'val_dataloader.batch_size',
                'train_cfg.max_iters', 'train_cfg.val_interval',
                'default_hooks.checkpoint.interval', 'default_hooks.checkpoint.max_keep_ckpts',
                'default_hooks.logger.interval'):
        opts[key] = int(opts[key])
    opts['custom_hooks'] = [dict(type='AmpProbeHook')]
    return opts


def test_amp_picks_the_wrapper_for_the_device() -> None:
    from densekit.apis import _enable_amp, load_config

    cfg = load_config(str(SEG_CONFIG))
    _enable_amp(cfg, 'cpu')
    assert cfg.optim_wrapper.type == 'densekit.CPUAmpOptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper
    cfg = load_config(str(SEG_CONFIG))
    _enable_amp(cfg, 'cuda')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    # a GPU config's AmpOptimWrapper becomes the CPU one on the CPU, its scaler settings dropped
    cfg.optim_wrapper.dtype = 'float16'
    _enable_amp(cfg, 'cpu')
    assert cfg.optim_wrapper.type == 'densekit.CPUAmpOptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper and 'dtype' not in cfg.optim_wrapper


def test_cpu_amp_wrapper_refuses_float16() -> None:
    from densekit.amp import CPUAmpOptimWrapper

    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="dtype must be 'bfloat16'.*'float16'"):
        CPUAmpOptimWrapper(optimizer, dtype='float16')


def test_train_amp_on_cpu_runs_the_forward_in_bfloat16(tmp_path: Path,
                                                       shapes_root: Path) -> None:
    from densekit.apis import train

    runner = train(str(SEG_CONFIG), work_dir=str(tmp_path), amp=True,
                   cfg_options=_cfg_options(shapes_root, 3), launcher='none')
    assert type(runner.optim_wrapper).__name__ == 'CPUAmpOptimWrapper'
    # stem conv + classifier, three training iterations: all bfloat16
    dtypes: List[torch.dtype] = RECORDED['dtypes']
    assert len(dtypes) == 6 and set(dtypes) == {torch.bfloat16}
    assert len(RECORDED['losses']) == 3 and all(math.isfinite(v) for v in RECORDED['losses'])
    # master weights stay float32
    assert RECORDED['param_dtypes'] == {torch.float32}
    assert (tmp_path / 'iter_3.pth').is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU (AmpOptimWrapper)')
def test_train_amp_on_gpu_uses_mmengine_amp(tmp_path: Path, shapes_root: Path) -> None:
    from densekit.apis import train

    runner = train(str(SEG_CONFIG), work_dir=str(tmp_path), amp=True,
                   cfg_options=_cfg_options(shapes_root, 3), launcher='none')
    assert type(runner.optim_wrapper).__name__ == 'AmpOptimWrapper'
    assert set(RECORDED['dtypes']) == {torch.float16}
    assert all(math.isfinite(v) for v in RECORDED['losses'])
