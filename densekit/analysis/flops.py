"""``densekit flops``: parameters and FLOPs per module of a config's model.

The count is mmengine's :class:`~mmengine.analysis.FlopAnalyzer` (a ``torch.jit`` trace; one
fused multiply-add counts as one FLOP, as in fvcore). The model is traced in eval mode through
its ``mode='tensor'`` forward on one random input of the task's shape: ``(1, 3, H, W)`` for
images, ``(1, C, D, H, W)`` for volumes. Detectors get one data sample with the image meta
(two-stage detectors need it for their proposals).

Where the trace fails (a model whose forward cannot be traced), the FLOPs of the convolution,
linear and matmul-like layers are counted with forward hooks instead, and the report says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

__all__ = ['FlopsReport', 'count_flops', 'call_flops', 'default_shape', 'model_input',
           'format_report']

IMAGE_TASKS = ('seg', 'det', 'sr', 'derain')


@dataclass
class FlopsReport:
    """What ``densekit flops`` prints (FLOPs: multiply-adds, as in fvcore/mmengine)."""

    config: str
    task: str
    input_shape: Tuple[int, ...]
    total_flops: int
    total_params: int
    method: str
    rows: List[Tuple[str, int, int]] = field(default_factory=list)  # (module, params, flops)
    unsupported_ops: Dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:  # noqa: D102
        return dict(config=self.config, task=self.task, input_shape=list(self.input_shape),
                    total_flops=self.total_flops, total_params=self.total_params,
                    method=self.method,
                    modules=[dict(module=m, params=p, flops=f) for m, p, f in self.rows],
                    unsupported_ops=self.unsupported_ops)


def default_shape(cfg: Any, task: str) -> Tuple[int, ...]:
    """The spatial input size a config trains on: ``patch_size`` (volumes), ``crop_size`` /
    ``image_size`` (images), else 64^3 or 256x256."""
    for key in (('patch_size',) if task == 'medical' else ('crop_size', 'image_size')):
        value = cfg.get(key)
        if isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
            return tuple(int(v) for v in value)
    return (64, 64, 64) if task == 'medical' else (256, 256)


def _check_shape(shape: Sequence[int], task: str) -> Tuple[int, ...]:
    dims = 3 if task == 'medical' else 2
    values = tuple(shape)
    if len(values) != dims or not all(isinstance(v, int) and v > 0 for v in values):
        want = 'D H W; on the command line --shape H W D' if dims == 3 else 'H W'
        raise ValueError(f'shape={list(values)} does not fit a {task!r} model: expected {dims} '
                         f'positive integers ({want})')
    return values


def _input_channels(model: nn.Module, task: str) -> int:
    if task != 'medical':
        return 3
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            return int(module.in_channels)
    raise ValueError('cannot tell the input channels of this volumetric model (no Conv3d)')


class _TensorForward(nn.Module):
    """``model(x, data_samples, mode='tensor')`` as a one-argument module for tracing."""

    def __init__(self, model: nn.Module, data_samples: Optional[list]) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, x: torch.Tensor) -> Any:  # noqa: D102
        return self.model(x, self.data_samples, mode='tensor')


def model_input(model: nn.Module, task: str, shape: Sequence[int]
                ) -> Tuple[torch.Tensor, Optional[list]]:
    """A random input batch of one and, for detectors, its data sample."""
    spatial = _check_shape(shape, task)
    x = torch.randn(1, _input_channels(model, task), *spatial)
    samples = None
    if task == 'det':
        from mmdet.structures import DetDataSample

        h, w = spatial
        samples = [DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                               pad_shape=(h, w), batch_input_shape=(h, w),
                                               scale_factor=(1.0, 1.0)))]
    return x, samples


def _param_counts(model: nn.Module) -> Dict[str, int]:
    from mmengine.analysis import parameter_count

    return dict(parameter_count(model))


def call_flops(fn: Callable[[], object]) -> int:
    """FLOPs torch counts while ``fn()`` runs (``torch.utils.flop_counter``: a multiply-add is two
    FLOPs, backward included when ``fn`` runs it). The one op-level counter the benchmarks use.

    Example:
        >>> call_flops(lambda: torch.ones(4, 8) @ torch.ones(8, 2))
        128
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _hook_flops(model: nn.Module, x: torch.Tensor) -> Dict[str, int]:
    """Multiply-adds of conv / linear layers by module, from forward hooks (the fallback)."""
    counts: Dict[str, int] = {}
    names = {module: name for name, module in model.named_modules()}

    def hook(module: nn.Module, inputs: Tuple[Any, ...], output: Any) -> None:
        if not isinstance(output, torch.Tensor):
            return
        if isinstance(module, nn.modules.conv._ConvNd):
            per_out = (module.in_channels // module.groups) * math.prod(module.kernel_size)
            if isinstance(module, nn.modules.conv._ConvTransposeNd):
                flops = inputs[0].numel() * module.out_channels // module.groups \
                    * math.prod(module.kernel_size)
            else:
                flops = output.numel() * per_out
        else:  # nn.Linear
            flops = output.numel() * module.in_features
        name = names[module]
        parts = name.split('.')
        for depth in range(len(parts) + 1):
            key = '.'.join(parts[:depth])
            counts[key] = counts.get(key, 0) + int(flops)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return counts


def count_flops(config: Any, shape: Optional[Sequence[int]] = None, max_depth: int = 2
                ) -> FlopsReport:
    """Count parameters and FLOPs of ``config``'s model per module.

    Args:
        config: A config path or ``mmengine.Config``.
        shape: Spatial input size, ``(H, W)`` or ``(D, H, W)`` for volumes (default: the
            config's crop / patch size).
        max_depth: Depth of the module tree listed in ``rows`` (0: the model only).

    Raises:
        ValueError: A shape that does not fit the task, or a negative ``max_depth``.
    """
    from mmengine.registry import MODELS, init_default_scope

    import densekit  # noqa: F401  (registers densekit's modules)
    from densekit.apis import load_config
    from densekit.inference import detect_task

    if not isinstance(max_depth, int) or max_depth < 0:
        raise ValueError(f'max_depth={max_depth!r}: expected an integer >= 0')
    cfg = load_config(config)
    task = detect_task(cfg)
    spatial = _check_shape(shape, task) if shape is not None else default_shape(cfg, task)
    init_default_scope(cfg.get('default_scope', 'densekit'))
    model = MODELS.build(cfg.model).eval()
    x, samples = model_input(model, task, spatial)
    wrapped = _TensorForward(model, samples).eval()
    params = _param_counts(model)
    unsupported: Dict[str, int] = {}
    try:
        from mmengine.analysis import FlopAnalyzer

        analyzer = FlopAnalyzer(wrapped, (x,)).unsupported_ops_warnings(False) \
            .uncalled_modules_warnings(False).tracer_warnings('none')
        with torch.no_grad():
            by_module = {name[len('model.'):] if name.startswith('model.') else
                         ('' if name == 'model' else name): int(value)
                         for name, value in analyzer.by_module().items()}
        unsupported = {str(k): int(v) for k, v in analyzer.unsupported_ops().items()}
        method = 'mmengine FlopAnalyzer (jit trace)'
        if by_module.get('', 0) <= 0:
            raise RuntimeError('the trace counted no FLOPs')
    except Exception as err:  # a model the jit tracer cannot follow
        by_module = {name[len('model.'):] if name.startswith('model.') else
                     ('' if name == 'model' else name): value
                     for name, value in _hook_flops(wrapped, x).items()}
        method = (f'forward hooks on conv/linear layers (the mmengine trace failed: '
                  f'{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ""})')
    rows = []
    for name in sorted(set(params) | set(by_module), key=_module_order(model)):
        depth = 0 if name == '' else name.count('.') + 1
        if depth <= max_depth:
            rows.append((name or '(model)', params.get(name, 0), by_module.get(name, 0)))
    return FlopsReport(config=str(getattr(cfg, 'filename', config)), task=task,
                       input_shape=tuple(x.shape), total_flops=by_module.get('', 0),
                       total_params=params.get('', 0), method=method, rows=rows,
                       unsupported_ops=unsupported)


def _module_order(model: nn.Module) -> Any:
    order = {name: index for index, (name, _) in enumerate(model.named_modules())}
    return lambda name: (order.get(name, len(order)), name)


def _human(value: float) -> str:
    for unit, size in (('T', 1e12), ('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(value) >= size:
            return f'{value / size:.3g}{unit}'
    return f'{value:.0f}'


def format_report(report: FlopsReport) -> str:
    """The report as a table: module | parameters | FLOPs."""
    width = max([len(name) for name, _, _ in report.rows] + [20]) + 2
    lines = [f'config: {report.config}', f'task: {report.task}, input {list(report.input_shape)}',
             f'method: {report.method}',
             f'{"module":<{width}}{"parameters":>12}{"FLOPs":>12}', '-' * (width + 24)]
    for name, params, flops in report.rows:
        lines.append(f'{name:<{width}}{_human(params):>12}{_human(flops):>12}')
    lines.append(f'total: {_human(report.total_params)} parameters ({report.total_params}), '
                 f'{_human(report.total_flops)} FLOPs ({report.total_flops}) per input of '
                 f'{list(report.input_shape)}')
    if report.unsupported_ops:
        skipped = ', '.join(f'{op} x{n}' for op, n in sorted(report.unsupported_ops.items()))
        lines.append(f'operators not counted: {skipped}')
    return '\n'.join(lines)
