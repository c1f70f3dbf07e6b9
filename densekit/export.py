"""``densekit export``: a trained model as an ONNX graph of standard ops, checked by onnxruntime.

What is exported, per task family (``cfg.task``):

* ``seg``: image -> class scores at the image's size. Input ``(N, 3, H, W)`` float32 pixels
  in [0, 255], in the channel order the model's data preprocessor gives its network (RGB when
  the config sets ``bgr_to_rgb``); the mean/std normalisation is part of the graph.
* ``det``: the network up to the raw head outputs (the same input as ``seg``); the outputs are
  the head's per-level maps, ``cls_0 ... cls_{L-1}``, ``box_0 ... box_{L-1}`` (and
  ``ctr_*`` for heads with a centerness branch: FCOS, ATSS). Box decoding and NMS stay
  outside the graph (:func:`numpy_detector` does them in numpy).
* ``sr`` / ``derain``: ``(N, 3, H, W)`` in [0, 1] -> the restored image (clamped to [0, 1]),
  as :meth:`densekit.Restorer.restore` computes it.
* ``medical``: the per-window network: a preprocessed window ``(N, C, D, H, W)`` -> the
  finest logits. The sliding window drives it.

Batch and spatial sizes are dynamic unless ``static=True`` fixes them at ``shape``. The
``.onnx`` file is written atomically: an export that fails leaves nothing behind, and a
checkpoint that does not fit the config is refused before anything is traced. A model with a
module that needs mmcv's compiled ops (deformable convolution: FADConv, PIIP's deformable
attention, the deformable SEPC / RCNet variants) is refused with the module's name and why,
and so is an ``opset`` below the ``onnx_min_opset`` a module declares (CATANet's LRSA sums
its overlapping patches with ScatterElements ``reduction='add'``: opset 16).

``verify`` runs the file in onnxruntime and the model in PyTorch on a size different from the
export size (97x131 in 2D) and reports the largest absolute difference, next to the float32
floor (the model in float32 against itself in float64 on the same input). The difference must
stay within ``tolerance`` (1e-4), or within four float32 floors for a model whose own float32
rounding is larger than that; otherwise the export counts as failed. onnx and onnxruntime
are the optional ``deploy`` extra (``pip install densekit[deploy]``).
"""
from __future__ import annotations

import copy
import math
import os
import os.path as osp
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from densekit.apis import load_config
from densekit.errors import ArgumentError, MissingExtra
from densekit.inference import build_model, detect_task

__all__ = ['ExportRefused', 'ExportReport', 'export_onnx', 'export_graph', 'verify_onnx',
           'read_metadata',
           'DEFAULT_TOLERANCE', 'require_deploy', 'NumpyDetector', 'numpy_detector']

DEFAULT_TOLERANCE = 1e-4
FLOOR_FACTOR = 4.0
DEFAULT_OPSET = 17
VERIFY_SHAPE_2D = (97, 131)
INSTALL_HINT = 'pip install "densekit[deploy]" (onnx and onnxruntime)'


class ExportRefused(ValueError):
    """The model cannot be exported to standard ONNX ops (the message says which module)."""


def require_deploy(module: str = 'onnxruntime') -> Any:
    """Import ``onnx`` / ``onnxruntime`` or raise an ImportError that says how to install it."""
    try:
        return __import__(module)
    except ImportError as err:
        raise MissingExtra(f'{module} is not installed; {INSTALL_HINT}') from err


def _custom_op_modules(model: nn.Module) -> List[Tuple[str, str]]:
    """``(module path, reason)`` of every module whose forward needs mmcv's compiled ops."""
    found = []
    for name, module in model.named_modules():
        reason = getattr(module, 'export_refusal', None)
        if callable(reason):
            reason = reason()
        if not reason and type(module).__module__.startswith('mmcv.ops'):
            reason = f'{type(module).__name__} is an mmcv compiled op'
        if reason:
            found.append((name or type(model).__name__, str(reason)))
    return found


def _refuse_custom_ops(model: nn.Module) -> None:
    found = _custom_op_modules(model)
    if not found:
        return
    # report the outermost modules (a refused module's children are refused with it)
    outer = [(name, why) for name, why in found
             if not any(name.startswith(other + '.') for other, _ in found if other != name)]
    listing = '; '.join(f'{name} ({why})' for name, why in outer[:8])
    more = f' and {len(outer) - 8} more' if len(outer) > 8 else ''
    raise ExportRefused(f'cannot export to standard ONNX ops: {listing}{more}. Export a '
                        'variant without them (SEPC lite, RCNet with plain convs, no FADC; a '
                        'one-stage detector rather than a two-stage one)')


def _refuse_low_opset(model: nn.Module, opset: int) -> None:
    """Refuse ``opset`` below the ``onnx_min_opset`` a module declares (an op it traces to,
    e.g. ScatterElements with ``reduction='add'``, exists only from that opset on)."""
    low = [(int(module.onnx_min_opset), name, type(module).__name__)
           for name, module in model.named_modules()
           if getattr(module, 'onnx_min_opset', None) is not None
           and opset < int(module.onnx_min_opset)]
    if low:
        minimum, name, kind = max(low, key=lambda item: item[0])
        raise ExportRefused(f'opset {opset} is too low: {name} ({kind}) needs opset >= '
                            f'{minimum}; export with --opset {minimum} or higher')


class _Normalised(nn.Module):
    """Applies the data preprocessor's mean/std (buffers copied from it) to pixel inputs."""

    def __init__(self, preprocessor: nn.Module) -> None:
        super().__init__()
        mean = getattr(preprocessor, 'mean', None)
        std = getattr(preprocessor, 'std', None)
        self.normalise = mean is not None and std is not None and bool(
            getattr(preprocessor, '_enable_normalize', True))
        if self.normalise:
            self.register_buffer('mean', mean.detach().clone().reshape(1, -1, 1, 1))
            self.register_buffer('std', std.detach().clone().reshape(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std if self.normalise else x


class SegmentationGraph(_Normalised):
    """mmseg ``EncoderDecoder``: pixels -> class scores resized to the input size."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model.data_preprocessor)
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        logits = self.model.decode_head.forward(self.model.extract_feat(super().forward(x)))
        return nn.functional.interpolate(logits, size=x.shape[2:], mode='bilinear',
                                         align_corners=self.model.decode_head.align_corners)


class DetectionGraph(_Normalised):
    """A one-stage mmdet detector: pixels -> the head's raw per-level outputs (flattened)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model.data_preprocessor)
        if getattr(model, 'bbox_head', None) is None:
            raise ExportRefused(f'{type(model).__name__}: only one-stage detectors (a '
                                'bbox_head, e.g. RetinaNet, FCOS) export; two-stage heads need '
                                "mmcv's RoIAlign op")
        self.model = model

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        outputs = self.model.bbox_head.forward(self.model.extract_feat(super().forward(x)))
        return tuple(level for group in outputs for level in group)

    def output_names(self, outputs: Sequence[Sequence[Tensor]]) -> List[str]:
        """Names of the flattened outputs: ``cls_*``, ``box_*``, then ``ctr_*`` (FCOS)."""
        prefixes = ['cls', 'box', 'ctr'] + [f'out{i}' for i in range(3, len(outputs))]
        return [f'{prefixes[g]}_{i}' for g, group in enumerate(outputs)
                for i in range(len(group))]


class MethodGraph(nn.Module):
    """One method of the model as the graph: ``Restorer.restore`` (``(N, 3, H, W)`` in [0, 1]
    -> the restored image) or ``MedicalSegmentor.logits`` (a preprocessed window -> the finest
    logits)."""

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, x: Tensor) -> Tensor:
        return getattr(self.model, self.method)(x)


@dataclass
class ExportReport:
    """What :func:`export_onnx` did.

    Attributes:
        path: The ``.onnx`` file.
        task: The config's task family.
        input_shape: The example input the graph was traced with.
        dynamic: Whether batch and spatial sizes are dynamic.
        output_names: The graph's outputs.
        verify_shape: The input the verification ran on (None without ``verify``).
        max_abs_diff: Largest |onnxruntime - PyTorch| over every output (None without verify).
        float32_floor: Largest |PyTorch float32 - PyTorch float64| on the same input: how far
            float32 rounding alone moves this model's outputs.
        output_scale: Largest |output| (float64).
        tolerance: The verification bound.
    """

    path: str
    task: str
    input_shape: Tuple[int, ...]
    dynamic: bool
    output_names: List[str] = field(default_factory=list)
    verify_shape: Optional[Tuple[int, ...]] = None
    max_abs_diff: Optional[float] = None
    float32_floor: Optional[float] = None
    output_scale: Optional[float] = None
    tolerance: float = DEFAULT_TOLERANCE

    @property
    def bound(self) -> float:
        """The bound the difference is held to: ``tolerance``, or four float32 floors where
        the model's own float32 rounding is larger than that (onnxruntime's kernels sum in
        another order and land a few floors from PyTorch on large 3D convolutions)."""
        return max(self.tolerance, FLOOR_FACTOR * (self.float32_floor or 0.0))

    @property
    def verified(self) -> bool:
        """True when verification ran and stayed within :attr:`bound`."""
        return self.max_abs_diff is not None and self.max_abs_diff <= self.bound

    def summary(self) -> str:
        """One line for the command line."""
        line = f'exported {self.task} model to {self.path} (input {self.input_shape}, ' \
               f'{"dynamic" if self.dynamic else "static"} sizes)'
        if self.max_abs_diff is None:
            return line
        verdict = 'OK' if self.verified else 'FAILED'
        return (f'{line}\nverify at {self.verify_shape}: max |onnxruntime - pytorch| = '
                f'{self.max_abs_diff:.3g} (float32 floor {self.float32_floor:.3g}, outputs up '
                f'to {self.output_scale:.3g}; bound {self.bound:.3g}): {verdict}')


def export_graph(model: nn.Module, task: str) -> nn.Module:
    """The exportable module of a copy of ``model`` for ``task`` (see the module docstring)."""
    _refuse_custom_ops(model)
    methods = dict(sr='restore', derain='restore', medical='logits')
    exportable = sorted(['seg', 'det', *methods])
    if task not in exportable:
        raise ExportRefused(f'no ONNX export for task {task!r}; exportable: {exportable}')
    model = copy.deepcopy(model).eval()
    if task == 'seg':
        return SegmentationGraph(model).eval()
    if task == 'det':
        return DetectionGraph(model).eval()
    return MethodGraph(model, methods[task]).eval()


def _in_channels(model: nn.Module, task: str) -> int:
    if task == 'medical':
        backbone = getattr(model, 'backbone', None)
        return int(getattr(backbone, 'in_channels', 1))
    return 3


def _default_shapes(cfg: Any, model: nn.Module, task: str
                    ) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """(export spatial size, a different verification size) for ``task``."""
    if task == 'medical':
        stride = tuple(getattr(model.backbone, 'total_stride', (1, 1, 1)))
        roi = model.test_cfg.get('roi_size') or tuple(4 * s for s in stride)
        roi = (roi,) * 3 if isinstance(roi, int) else tuple(roi)
        other = tuple(r + s * max(1, math.ceil(8 / s)) for r, s in zip(roi, stride))
        return roi, other
    if task in ('sr', 'derain'):
        return (64, 64), (37, 53)
    return (128, 128), VERIFY_SHAPE_2D


def _check_shape(shape: Optional[Sequence[int]], task: str) -> Optional[Tuple[int, ...]]:
    if shape is None:
        return None
    dims = 3 if task == 'medical' else 2
    shape = tuple(shape)
    if len(shape) != dims or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ArgumentError(f'shape must be {dims} positive sizes for task {task!r}, got '
                            f'{shape!r}')
    return shape


def _as_tuple(out: Any) -> Tuple[Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def export_onnx(config: Any, checkpoint: str, out: str, *, opset: int = DEFAULT_OPSET,
                shape: Optional[Sequence[int]] = None, static: bool = False,
                verify: bool = False, tolerance: float = DEFAULT_TOLERANCE,
                strict: bool = True, cfg_options: Optional[dict] = None) -> ExportReport:
    """Export a trained model to ``out`` (see the module docstring).

    Args:
        config: Config path or object.
        checkpoint: Checkpoint path (loaded strictly).
        out: The ``.onnx`` path (its folder is created; an existing file is replaced only
            by a complete export).
        opset: ONNX opset version.
        shape: Spatial size of the example input (``(H, W)``, ``(D, H, W)`` for medical).
        static: Fix batch 1 and ``shape`` instead of dynamic sizes.
        verify: Compare onnxruntime with PyTorch on a different size (1 batch; the export
            size when ``static``).
        tolerance: Largest allowed absolute difference of ``verify``.

    Raises:
        ExportRefused: A module needs mmcv's compiled ops, or the task has no export.
        densekit.checkpoint.CheckpointMismatchError: The checkpoint does not fit the config.
        ArgumentError: Bad ``shape``, ``opset`` or ``out``.
    """
    if not isinstance(out, (str, os.PathLike)) or not os.fspath(out).endswith('.onnx'):
        raise ArgumentError(f'out must be a path ending in .onnx, got {out!r}')
    if not isinstance(opset, int) or not 11 <= opset <= 23:
        raise ArgumentError(f'opset must be an int in 11-23, got {opset!r}')
    out = os.fspath(out)
    require_deploy('onnx')
    cfg = load_config(config, cfg_options)
    task = detect_task(cfg)
    model = build_model(cfg, checkpoint, 'cpu', strict=strict)
    graph = export_graph(model, task)
    _refuse_low_opset(graph, opset)
    shape = _check_shape(shape, task)
    export_size, verify_size = _default_shapes(cfg, model, task)
    export_size = shape or export_size
    if static:
        verify_size = export_size
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(1, _in_channels(model, task), *export_size, generator=generator)
    if task in ('seg', 'det'):
        example = example * 255
    with torch.no_grad():
        outputs = _as_tuple(graph(example))
        if task == 'det':
            raw = graph.model.bbox_head.forward(graph.model.extract_feat(
                _Normalised.forward(graph, example)))
            names = graph.output_names(raw)
        else:
            names = ['scores'] if task == 'seg' else ['output']
    axes_names = ['depth', 'height', 'width'][-len(export_size):]
    dynamic_axes = None
    if not static:
        dynamic_axes = {'input': {0: 'batch', **{2 + i: n for i, n in enumerate(axes_names)}}}
        for name, value in zip(names, outputs):
            dynamic_axes[name] = {0: 'batch', **{2 + i: f'{name}_{n}' for i, n
                                                 in enumerate(axes_names[-(value.dim() - 2):])}}
    folder = osp.dirname(osp.abspath(out))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix='.' + osp.basename(out) + '.', suffix='.part',
                                   dir=folder)
    os.close(handle)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')  # tracer warnings about Python values
            torch.onnx.export(graph, (example,), tmp, dynamo=False, opset_version=opset,
                              input_names=['input'], output_names=names,
                              dynamic_axes=dynamic_axes)
        _finish_graph(tmp, dict(task=task, dataset_meta=_jsonable_meta(model),
                                input=report_input(task), scale=getattr(model, 'scale', 1),
                                opset=opset, outputs=names))
        report = ExportReport(out, task, tuple(example.shape), not static, names,
                              tolerance=tolerance)
        if verify:
            size = verify_size
            probe = torch.rand(1, example.shape[1], *size, generator=generator)
            if task in ('seg', 'det'):
                probe = probe * 255
            report.verify_shape = tuple(probe.shape)
            report.max_abs_diff, report.float32_floor, report.output_scale = verify_onnx(
                tmp, graph, probe)
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.unlink(tmp)
    return report


META_KEY = 'densekit'


def report_input(task: str) -> str:
    """What the graph's ``input`` holds, in words (stored in the file's metadata)."""
    return {'seg': 'pixels in [0, 255], the network channel order',
            'det': 'pixels in [0, 255], the network channel order',
            'sr': 'RGB in [0, 1]', 'derain': 'RGB in [0, 1]',
            'medical': 'a preprocessed window (N, C, D, H, W)'}[task]


def _jsonable_meta(model: nn.Module) -> dict:
    import json

    meta = getattr(model, 'dataset_meta', None) or {}
    try:
        return json.loads(json.dumps(meta, default=list))
    except (TypeError, ValueError):
        return {}


def read_metadata(path: str) -> dict:
    """The densekit metadata of an exported file (task, dataset_meta, input, scale)."""
    import json

    onnx = require_deploy('onnx')
    model = onnx.load(path, load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == META_KEY:
            return json.loads(prop.value)
    raise ValueError(f'{path}: not a densekit export (no {META_KEY!r} metadata); export it '
                     'with densekit export')


def _finish_graph(path: str, meta: dict) -> None:
    """Rewrite negative ``Transpose`` permutations (``movedim(-1, 1)`` traces to them) as
    positive axes (the ONNX standard requires them and onnxruntime refuses the graph), and
    store densekit's metadata (task, classes, input convention) in the file."""
    import json

    onnx = require_deploy('onnx')
    graph = onnx.load(path)
    entry = graph.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    for node in graph.graph.node:
        if node.op_type != 'Transpose':
            continue
        for attr in node.attribute:
            if attr.name == 'perm' and any(axis < 0 for axis in attr.ints):
                rank = len(attr.ints)
                fixed = [axis % rank for axis in attr.ints]
                del attr.ints[:]
                attr.ints.extend(fixed)
    onnx.save(graph, path)


def verify_onnx(path: str, graph: nn.Module, probe: Tensor) -> Tuple[float, float, float]:
    """Compare onnxruntime with PyTorch on ``probe`` over every output of ``graph``.

    Returns:
        ``(max |onnxruntime - PyTorch|, max |PyTorch float32 - PyTorch float64|,
        max |output|)``: the difference, the float32 rounding floor of the model itself on
        this input, and the output scale.
    """
    ort = require_deploy('onnxruntime')
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    got = session.run(None, {'input': probe.numpy()})
    with torch.no_grad():
        want = _as_tuple(graph(probe))
        exact = _as_tuple(copy.deepcopy(graph).double()(probe.double()))
    if len(got) != len(want):
        raise RuntimeError(f'{path}: onnxruntime gave {len(got)} outputs, PyTorch {len(want)}')
    worst = floor = scale = 0.0
    for ours, theirs, ref in zip(got, want, exact):
        theirs, ref = theirs.numpy(), ref.numpy()
        if ours.shape != theirs.shape:
            raise RuntimeError(f'{path}: onnxruntime output shape {ours.shape} differs from '
                               f'PyTorch {theirs.shape} at input {tuple(probe.shape)}: the '
                               'graph baked a size in')
        worst = max(worst, float(np.abs(ours.astype(np.float64) - theirs).max(initial=0.0)))
        floor = max(floor, float(np.abs(theirs.astype(np.float64) - ref).max(initial=0.0)))
        scale = max(scale, float(np.abs(ref).max(initial=0.0)))
    return worst, floor, scale


def onnx_session(path: str, threads: Optional[int] = None) -> Any:
    """An onnxruntime CPU session for ``path`` with ``threads`` intra-op threads (default:
    torch's thread count, so both backends use the same cores)."""
    ort = require_deploy('onnxruntime')
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


BACKEND_TASKS = ('seg', 'det', 'sr', 'derain', 'medical')


def bind_session(model: nn.Module, task: str, session: Any) -> nn.Module:
    """Route ``model``'s network call to an onnxruntime ``session`` of its export.

    Everything around the network stays densekit's: the test pipeline, sliding windows,
    tiling, mmseg's resizing and the label mapping. Only the call the graph replaces changes:
    ``restore`` (restoration), ``logits`` (medical windows), ``encode_decode`` (mmseg
    segmentors) or the backbone-to-head forward (mmdet one-stage detectors, whose box
    decoding and NMS stay mmdet's); segmentors and detectors get back the pixels the graph
    normalises itself.

    Raises:
        ValueError: ``task`` has no onnxruntime backend.
    """
    if task not in BACKEND_TASKS:
        raise ValueError(f'the onnxruntime backend runs tasks {BACKEND_TASKS}, not {task!r}; '
                         'use backend="pytorch" for it')

    def run_all(x: Tensor) -> List[Tensor]:
        outs = session.run(None, {'input': x.detach().to('cpu', torch.float32).numpy()})
        return [torch.from_numpy(out) for out in outs]

    def run(x: Tensor) -> Tensor:
        return run_all(x)[0]

    def pixels(model_inputs: Tensor) -> Tensor:
        pre = model.data_preprocessor
        if getattr(pre, 'mean', None) is None or getattr(pre, 'std', None) is None:
            return model_inputs
        shape = (1, -1, 1, 1)
        return model_inputs * pre.std.reshape(shape) + pre.mean.reshape(shape)

    if task in ('sr', 'derain'):
        own = int(getattr(model, 'scale', 1))

        def restore(images: Tensor, scale: Optional[int] = None, clamp: bool = True) -> Tensor:
            if scale not in (None, own):
                raise ValueError(f'the exported graph restores at scale {own}, got {scale}')
            return run(images)

        model.restore = restore
    elif task == 'medical':
        def logits(x: Tensor, all_scales: bool = False) -> Tensor:
            return [run(x)] if all_scales else run(x)

        model.logits = logits
    elif task == 'det':
        groups = len({name.split('_')[0] for name in session_output_names(session)})

        def head_forward(x: Tensor) -> tuple:
            outs = run_all(pixels(x))
            per = len(outs) // groups
            return tuple(outs[g * per:(g + 1) * per] for g in range(groups))

        model.extract_feat = lambda inputs: inputs  # the graph starts from the pixels
        model.bbox_head.forward = head_forward
    else:
        def encode_decode(inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
            return run(pixels(inputs))

        model.encode_decode = encode_decode
    model.onnx_session = session
    return model


def session_output_names(session: Any) -> List[str]:
    """The output names of an onnxruntime session, in order."""
    return [output.name for output in session.get_outputs()]


@dataclass
class NumpyDetector:
    """An exported one-stage detector (RetinaNet, ATSS, FCOS) run without PyTorch or mmdet at
    call time.

    onnxruntime runs the backbone-to-head graph; the config's test pipeline (keep-ratio
    resize, padding) is redone with cv2 and numpy, and the head's decoder
    (:class:`~densekit.tasks.detection.decode.AnchorDecoder` or
    :class:`~densekit.tasks.detection.decode.PointDecoder`) decodes and runs NMS in numpy.
    Build it with :func:`numpy_detector`.

    Attributes:
        session: The onnxruntime session of the ``.onnx`` file.
        decoder: The head's box decoding and NMS; the graph's ``ctr_*`` outputs go to it
            when it has ``with_centerness``.
        scale: The test pipeline's keep-ratio ``Resize`` scale (None: no resize).
        pad_divisor: The data preprocessor's ``pad_size_divisor``.
        pad_pixel: The pixel value of the padding (the preprocessor pads normalised zeros,
            which is the mean pixel).
    """

    session: Any
    decoder: Any
    scale: Optional[Tuple[int, int]]
    pad_divisor: int = 1
    pad_pixel: Tuple[float, ...] = (0.0, 0.0, 0.0)

    def network_input(self, image: np.ndarray) -> Tuple[np.ndarray, Tuple[int, int],
                                                        Tuple[float, float]]:
        """``image`` resized and padded as mmdet's pipeline does: the ``(1, 3, H, W)`` float32
        input, the resized ``(h, w)`` (``img_shape``) and ``(w_scale, h_scale)``."""
        import cv2

        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'image must be an (H, W, 3) array, got '
                             f'{getattr(image, "shape", type(image).__name__)}')
        height, width = image.shape[:2]
        resized, factor = image, (1.0, 1.0)
        if self.scale is not None:
            # mmcv.imrescale: the largest size within (long, short) edges, rounded half up
            ratio = min(max(self.scale) / max(height, width), min(self.scale) / min(height, width))
            size = (int(width * ratio + 0.5), int(height * ratio + 0.5))
            resized = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
            factor = (size[0] / width, size[1] / height)
        new_h, new_w = resized.shape[:2]
        divisor = max(int(self.pad_divisor), 1)
        padded = np.empty((-(-new_h // divisor) * divisor, -(-new_w // divisor) * divisor, 3),
                          np.float32)
        padded[...] = np.asarray(self.pad_pixel, np.float32)
        padded[:new_h, :new_w] = resized
        return padded.transpose(2, 0, 1)[None].copy(), (new_h, new_w), factor

    def __call__(self, image: np.ndarray) -> dict:
        """Detections of one ``(H, W, 3)`` image in the network's channel order (RGB for
        configs with ``bgr_to_rgb``): ``boxes`` (K, 4) float32 in the image's pixels,
        ``scores`` (K,) float32, ``labels`` (K,) int64."""
        pixels, img_shape, factor = self.network_input(image)
        outputs = dict(zip(session_output_names(self.session),
                           self.session.run(None, {'input': pixels})))
        levels = range(self.decoder.num_levels)
        centerness = [outputs[f'ctr_{i}'] for i in levels] if self.decoder.with_centerness \
            else None
        return self.decoder.decode([outputs[f'cls_{i}'] for i in levels],
                                   [outputs[f'box_{i}'] for i in levels],
                                   img_shape, factor, centerness)


def numpy_detector(config: Any, onnx_path: str, threads: Optional[int] = None,
                   cfg_options: Optional[dict] = None) -> NumpyDetector:
    """A :class:`NumpyDetector` for ``onnx_path``, exported from ``config`` (an anchor head
    with ``DeltaXYWHBBoxCoder`` such as RetinaNet or ATSS, or an ``FCOSHead``). The config is
    read once, here.

    Raises:
        ValueError: The config is not such a detector, its test pipeline has a step other
            than loading, keep-ratio resizing and packing, or the graph's outputs do not fit
            the head (centerness outputs for a head without that branch, or none for one
            with it).
    """
    from densekit.tasks.detection.decode import decoder_from_config

    cfg = load_config(config, cfg_options)
    if detect_task(cfg) != 'det':
        raise ValueError(f'numpy_detector runs detection configs, got task {detect_task(cfg)!r}')
    head = cfg.model.get('bbox_head')
    if head is None:
        raise ValueError('numpy_detector needs a one-stage detector (model.bbox_head)')
    decoder = decoder_from_config(head, cfg.model.get('test_cfg') or head.get('test_cfg'))
    scale = None
    for step in cfg.test_dataloader.dataset.pipeline:
        name = str(step['type']).rsplit('.', 1)[-1]
        if name == 'Resize':
            if not step.get('keep_ratio', False) or 'scale' not in step:
                raise ValueError(f'numpy_detector redoes a keep-ratio Resize(scale=...), got '
                                 f'{dict(step)!r}')
            scale = tuple(int(v) for v in _pair_of(step['scale']))
        elif name not in ('LoadImageFromFile', 'LoadAnnotations', 'PackDetInputs'):
            raise ValueError(f'numpy_detector cannot redo the test pipeline step {name!r}')
    pre = cfg.model.get('data_preprocessor') or {}
    session = onnx_session(onnx_path, threads)
    names = session_output_names(session)
    groups = ['cls', 'box'] + (['ctr'] if decoder.with_centerness else [])
    expected = [f'{group}_{i}' for group in groups for i in range(decoder.num_levels)]
    if sorted(names) != sorted(expected):
        raise ValueError(f'{onnx_path}: outputs {names} do not fit the config\'s '
                         f'{head.get("type")} ({decoder.num_levels} levels), which '
                         f'needs {expected}')
    return NumpyDetector(session=session, decoder=decoder, scale=scale,
                         pad_divisor=int(pre.get('pad_size_divisor', 1)),
                         pad_pixel=tuple(float(v) for v in pre.get('mean', (0.0, 0.0, 0.0))))


def _pair_of(value: Any) -> Tuple[Any, Any]:
    return (value, value) if isinstance(value, (int, float)) else tuple(value)
