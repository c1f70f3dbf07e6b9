"""Train and test entry points shared by ``tools/*.py`` and the ``densekit`` command.

Both follow OpenMMLab's tools: load a config, apply ``--cfg-options``, pick a work dir, build an
mmengine Runner and run it. There is one implementation; the scripts and the CLI only parse
arguments and call these functions.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Any, Optional, Sequence, Union

from mmengine.config import Config, DictAction  # noqa: F401  (DictAction re-exported for the CLI)
from mmengine.runner import Runner

from densekit.distributed import prepare_distributed
from densekit.fileio import atomic_write_text
from densekit.packaged import resolve_config

ConfigLike = Union[str, os.PathLike, Config]


def load_config(config: ConfigLike, cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None) -> Config:
    """Load ``config`` (a path, a ``densekit::<task>/<file>.py`` name or a Config), merge
    ``cfg_options`` and settle ``work_dir``.

    The work dir follows OpenMMLab's precedence: the argument, then ``cfg.work_dir``, then
    ``./work_dirs/<config name>``.

    Raises:
        FileNotFoundError: If a config path does not exist.
    """
    if isinstance(config, Config):
        cfg = config.copy()
        name = cfg.filename and osp.splitext(osp.basename(cfg.filename))[0] or 'config'
    else:
        path = resolve_config(config)
        if not osp.isfile(path):
            raise FileNotFoundError(f'config file {path!r} does not exist')
        cfg = Config.fromfile(path)
        name = osp.splitext(osp.basename(path))[0]
    if cfg_options:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    cfg.setdefault('default_scope', 'densekit')
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', name)
    return cfg


_MISSING = object()


def _current_value(cfg: Any, key: str) -> Any:
    node: Any = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    for part in key.split('.'):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def check_cfg_options(cfg: Any, cfg_options: dict) -> None:
    """Refuse an override whose value cannot be what the config holds there.

    A number or boolean in the config overridden by a word (``num_classes=seven``) is an error
    that names the option, instead of a failure deep inside model building.

    Raises:
        ValueError: naming the option, the value and what the config holds.
    """
    for key, value in cfg_options.items():
        old = _current_value(cfg, key)
        if old is _MISSING or old is None or not isinstance(value, str):
            continue
        if isinstance(old, bool):
            expected = 'True or False'
        elif isinstance(old, int):
            expected = 'an integer'
        elif isinstance(old, float):
            expected = 'a number'
        else:
            continue
        raise ValueError(f'--cfg-options {key}={value}: expected {expected} (the config has '
                         f'{key}={old!r}), got the text {value!r}')


def _strict_resume(runner: Runner, config: Optional[str]) -> None:
    """Make ``runner.resume`` refuse a checkpoint whose weights do not fit the model."""
    from densekit.checkpoint import check_fit

    resume = runner.resume

    def strict_resume(filename: str, *args: Any, **kwargs: Any) -> None:
        check_fit(runner.model, filename, strict=True, config=config, action='resume from')
        resume(filename, *args, **kwargs)

    runner.resume = strict_resume


def _enable_amp(cfg: Config, device: Optional[str] = None) -> None:
    """Switch a plain optim wrapper to mixed precision for ``device`` (default: the one the
    Runner will use): mmengine's ``AmpOptimWrapper`` with dynamic loss scaling on a GPU,
    ``densekit.CPUAmpOptimWrapper`` (bfloat16 autocast) on the CPU, where mmengine's refuses
    to build. A GPU config's ``AmpOptimWrapper`` is switched the same way on the CPU."""
    from densekit.amp import amp_optim_wrapper_type

    wrapper = cfg.optim_wrapper
    target = amp_optim_wrapper_type(device)
    current = wrapper.get('type', 'OptimWrapper')
    if target == 'AmpOptimWrapper':
        if current in ('OptimWrapper', 'mmengine.OptimWrapper'):
            wrapper.type = 'AmpOptimWrapper'
            wrapper.setdefault('loss_scale', 'dynamic')
    elif current in ('OptimWrapper', 'mmengine.OptimWrapper', 'AmpOptimWrapper',
                     'mmengine.AmpOptimWrapper'):
        wrapper.type = target
        for gpu_only in ('loss_scale', 'dtype', 'use_fsdp'):
            wrapper.pop(gpu_only, None)


def train(config: ConfigLike, *, work_dir: Optional[str] = None,
          resume: Union[bool, str, None] = None, amp: bool = False,
          cfg_options: Optional[dict] = None, launcher: str = 'none',
          seed: Optional[int] = None, deterministic: bool = False,
          time_budget: Optional[float] = None, strict: bool = True) -> Runner:
    """Train a model from ``config`` with an mmengine Runner and return the finished Runner.

    Args:
        config: Config path or object.
        work_dir: Where logs and checkpoints go.
        resume: ``True`` resumes from the latest checkpoint in the work dir (if any); a path
            resumes from that checkpoint; ``None``/``False`` starts fresh.
        amp: Mixed precision: mmengine's ``AmpOptimWrapper`` on a GPU, bfloat16 autocast
            (``densekit.CPUAmpOptimWrapper``) on the CPU.
        cfg_options: Overrides merged into the config (``key.sub=value`` style keys).
        launcher: ``'none'``, ``'pytorch'`` (torchrun) or ``'slurm'``.
        seed: Overrides ``randomness.seed``.
        deterministic: Sets ``randomness.deterministic``.
        time_budget: Stop training after this many seconds (``densekit.TimeBudgetHook``),
            saving the checkpoint of the last iteration.
        strict: Resume only from a checkpoint whose weights fit the model exactly (fine-tuning
            through ``load_from`` without ``resume`` stays non-strict, as in mmengine).
    """
    cfg = load_config(config, cfg_options, work_dir)
    prepare_distributed(cfg, launcher)
    if amp:
        _enable_amp(cfg)
    if isinstance(resume, str):
        cfg.resume, cfg.load_from = True, resume
    elif resume:
        cfg.resume, cfg.load_from = True, None
    if seed is not None or deterministic:
        randomness = cfg.setdefault('randomness', {})
        if seed is not None:
            randomness['seed'] = seed
        if deterministic:
            randomness['deterministic'] = True
    if time_budget is not None:
        cfg.custom_hooks = [*cfg.get('custom_hooks', []),
                            dict(type='densekit.TimeBudgetHook', budget_s=time_budget)]
    runner = Runner.from_cfg(cfg)
    if strict:
        _strict_resume(runner, cfg.filename)
    runner.train()
    return runner


def _enable_drawing(cfg: Config, show_dir: str) -> None:
    hooks = cfg.get('default_hooks', {})
    if 'visualization' not in hooks:
        raise ValueError('--show-dir needs a visualization hook in cfg.default_hooks '
                         "(e.g. visualization=dict(type='mmseg.SegVisualizationHook'))")
    hook = hooks['visualization']
    hook.update(draw=True, interval=1)
    # a fresh visualizer instance: an earlier Runner in this process (e.g. the training one)
    # may have registered one under the config's name with other backends
    cfg.visualizer['name'] = f'densekit-test-{id(cfg)}-{osp.abspath(show_dir)}'
    import inspect

    from mmengine.registry import HOOKS, init_default_scope

    init_default_scope(cfg.get('default_scope', 'densekit'))
    hook_cls = HOOKS.get(hook['type'])
    if hook_cls is not None and 'test_out_dir' in inspect.signature(hook_cls).parameters:
        # mmdet-style hooks write one file per image themselves (an absolute path is kept)
        hook['test_out_dir'] = osp.abspath(show_dir)
    else:  # mmseg-style hooks hand pictures to the visualizer's backends
        cfg.visualizer['vis_backends'] = [dict(type='densekit.FlatImageBackend',
                                               save_dir=show_dir)]


def test(config: ConfigLike, checkpoint: str, *, work_dir: Optional[str] = None,
         out: Optional[str] = None, show_dir: Optional[str] = None,
         cfg_options: Optional[dict] = None, launcher: str = 'none', strict: bool = True
         ) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on the config's test split and return the metrics.

    Args:
        out: ``*.pkl`` dumps raw predictions (mmengine ``DumpResults``); any other suffix
            writes the metrics as JSON.
        show_dir: Write prediction pictures there (the config's visualization hook draws them).
        strict: Refuse a checkpoint whose weights do not fit the model (``False`` loads the
            matching keys and lists the rest).

    Raises:
        densekit.checkpoint.CheckpointMismatchError: ``strict`` and the weights do not fit.
    """
    from densekit.checkpoint import check_fit

    cfg = load_config(config, cfg_options, work_dir)
    prepare_distributed(cfg, launcher)
    cfg.load_from = checkpoint
    cfg.resume = False
    if show_dir:
        _enable_drawing(cfg, show_dir)
    runner = Runner.from_cfg(cfg)
    check_fit(runner.model, checkpoint, strict=strict, config=cfg.filename)
    if out and out.endswith(('.pkl', '.pickle')):
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=out))
    metrics = runner.test()
    if out and not out.endswith(('.pkl', '.pickle')):
        atomic_write_text(json.dumps(_jsonable(metrics), indent=2), out)
    return metrics


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, 'item'):
        return obj.item()
    return obj


def parse_cfg_options(pairs: Sequence[str]) -> dict:
    """Turn ``['a.b=1', 'c=[1,2]']`` into a dict the way mmengine's ``DictAction`` does."""
    import argparse

    namespace = argparse.Namespace()
    DictAction(option_strings=['--cfg-options'], dest='cfg_options')(None, namespace, list(pairs))
    return namespace.cfg_options or {}
