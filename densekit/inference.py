"""``densekit infer``: run a trained model over images, folders or globs, losing nothing.

A run goes in three steps:

1. **Plan.** The inputs are expanded (files, folders, glob patterns) into a fixed list before
   anything is written. Each input's output names come from its task handler. Outputs go flat
   into ``--out``; if two inputs would get the same output name there, the inputs' folders
   (relative to their common parent) are kept under ``--out``. A collision that remains (for
   example ``photo.png`` and ``photo.jpg`` in one folder) refuses the run up front with the
   list, and so does any output that is one of the run's inputs: inputs are never overwritten.
2. **Predict.** Each input is read, predicted and written under a progress bar. Any exception
   while doing so is that input's failure: it is reported with the file and the reason and the
   run goes on. Only errors that cannot depend on the input (out of memory) stop the run.
3. **Report.** The summary counts inputs (cases, for multi-file medical inputs), not files; the
   run fails (:attr:`InferenceSummary.ok` is false, ``densekit infer`` exits 1) when any input
   failed or any input pattern matched nothing, and the last line says so. No empty output
   folder is left behind when nothing was written.

Checkpoints load strictly (:func:`densekit.checkpoint.load_weights`); ``strict=False`` loads the
matching keys and prints the rest.

Task handlers are chosen by the config's ``task`` key; see :class:`Handler` and
:func:`register_handler`. Segmentation writes ``<stem>_label.png`` (class indices, 16-bit when
there are more than 256 classes) and ``<stem>_overlay.png``; with ``--tile`` (or for images of
more than 4096x4096 pixels, when the test pipeline does not resize) it segments window by
window in bounded memory (:mod:`densekit.tasks.segmentation.windowed`); detection writes
``<stem>.json`` and ``<stem>_boxes.png``.
"""
from __future__ import annotations

import glob
import json
import os
import os.path as osp
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from densekit.apis import load_config
from densekit.errors import positive_int
from densekit.fileio import atomic_write_bytes
from densekit.imageio import UnreadableInput, bgr_from_array, encode_image, read_bgr
from densekit.palette import box_palette, class_palette

__all__ = ['IMAGE_SUFFIXES', 'UnreadableInput', 'RunRefused', 'InferOptions', 'Handler',
           'InferenceSummary', 'expand_inputs', 'plan_outputs', 'build_model',
           'class_palette', 'register_handler', 'detect_task', 'infer']

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
# segmentation of larger images (when the test pipeline does not resize them) runs window by
# window in bounded memory (densekit.tasks.segmentation.windowed), as --tile asks for any size
WINDOWED_PIXELS = 4096 * 4096
DEFAULT_WINDOW = 512


class RunRefused(ValueError):
    """The run was refused before anything was written (overwrites, output collisions)."""


@dataclass
class InferOptions:
    """Per-run options that handlers read (the ``densekit infer`` flags)."""

    score_thr: float = 0.3
    tile: Optional[int] = None
    overlap: Optional[int] = None
    batch_size: int = 1
    skip_existing: bool = False
    channel_axis: Optional[int] = None
    progress: bool = True
    ensemble: Sequence[str] = ()  # medical: more checkpoints averaged with the main one

    def __post_init__(self) -> None:
        positive_int(self.batch_size, 'batch_size')
        if not 0.0 <= float(self.score_thr) <= 1.0:
            raise ValueError(f'score_thr must be in [0, 1], got {self.score_thr!r}')
        if isinstance(self.ensemble, str) or not all(isinstance(p, str) for p in self.ensemble):
            raise TypeError(f'ensemble must be a sequence of checkpoint paths, got '
                            f'{self.ensemble!r}')
        self.ensemble = tuple(self.ensemble)


@dataclass
class Handler:
    """What a task's inference needs.

    Attributes:
        suffixes: File suffixes the task reads (folders are filtered by them).
        outputs: ``outputs(path)`` gives the output file names of one input; an empty list
            means the input is covered by another one (a later channel file of a case).
        read: ``read(path)`` decodes one input; raises on a bad file.
        predict: ``predict(items)`` predicts a list of read items, one result each.
        write: ``write(path, item, result, output_paths)`` writes the planned outputs.
        batchable: Whether ``predict`` benefits from several items at once.
        from_input: ``from_input(obj)`` makes an item from an in-memory input (an array, a
            nibabel image), as ``read`` does from a file (:class:`~densekit.Predictor`).
        result: ``result(source, item, prediction)`` turns one prediction into what
            :meth:`densekit.Predictor.predict` returns for the input ``source``.
        batch_key: Items with equal keys may share a forward pass (same image size: no
            padding inside a batch, so a batch gives the results of single inputs).
    """

    suffixes: Sequence[str]
    outputs: Callable[[str], List[str]]
    read: Callable[[str], Any]
    predict: Callable[[List[Any]], List[Any]]
    write: Callable[[str, Any, Any, List[str]], None]
    batchable: bool = False
    from_input: Optional[Callable[[Any], Any]] = None
    result: Optional[Callable[[Any, Any, Any], Any]] = None
    batch_key: Optional[Callable[[Any], Any]] = None

    def handle(self, path: str, out_dir: str) -> List[str]:
        """Read, predict and write one input into ``out_dir``; returns the written paths."""
        planned = plan_outputs([path], self.outputs, out_dir).get(path, [])
        if not planned:
            return []
        os.makedirs(out_dir, exist_ok=True)
        item = self.read(path)
        self.write(path, item, self.predict([item])[0], planned)
        return planned


@dataclass
class InferenceSummary:
    """What an inference run did.

    Attributes:
        inputs: The inputs (cases) the run planned to predict.
        predicted: Those that were predicted and written.
        skipped: Those skipped because their outputs existed (``skip_existing``).
        written: Every file written.
        failed: Input -> reason, for every input that failed.
        missing: Input pattern -> reason, for patterns that matched nothing.
    """

    inputs: List[str] = field(default_factory=list)
    predicted: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    written: List[str] = field(default_factory=list)
    failed: Dict[str, str] = field(default_factory=dict)
    missing: Dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every input was predicted (or skipped) and every pattern matched."""
        return not self.failed and not self.missing


def expand_inputs(inputs: Sequence[str], suffixes: Sequence[str] = IMAGE_SUFFIXES
                  ) -> tuple[List[str], Dict[str, str]]:
    """Expand files, folders and glob patterns into a sorted, de-duplicated file list.

    Returns the files and a dict of inputs that matched nothing (input -> reason).
    """
    files: List[str] = []
    seen: set[str] = set()
    missing: Dict[str, str] = {}
    lowered = tuple(suffix.lower() for suffix in suffixes)
    for item in inputs:
        if osp.isdir(item):
            found = sorted(osp.join(item, name) for name in os.listdir(item)
                           if name.lower().endswith(lowered) and osp.isfile(osp.join(item, name)))
            reason = f'folder has no files ending in {", ".join(suffixes)}'
        elif osp.isfile(item):
            found, reason = [item], ''
        else:
            found = sorted(path for path in glob.glob(item, recursive=True) if osp.isfile(path))
            reason = 'no such file, and no file matches it as a pattern'
        if not found:
            missing[item] = reason
        for path in found:
            key = osp.realpath(path)
            if key not in seen:
                seen.add(key)
                files.append(path)
    return files, missing


def _collisions(planned: Dict[str, List[str]]) -> Dict[str, List[str]]:
    owners: Dict[str, List[str]] = defaultdict(list)
    for path, outputs in planned.items():
        for output in outputs:
            owners[osp.realpath(output)].append(path)
    return {output: paths for output, paths in owners.items() if len(paths) > 1}


def plan_outputs(files: Sequence[str], names: Callable[[str], List[str]], out_dir: str
                 ) -> Dict[str, List[str]]:
    """Output paths of every input, checked before anything is written.

    Outputs go flat into ``out_dir``; if that makes two inputs share an output, the inputs'
    folders relative to their common parent are kept under ``out_dir``.

    Returns:
        Input -> output paths, for the inputs that produce outputs (in input order).

    Raises:
        RunRefused: If outputs still collide, or an output is one of the inputs.
    """
    named = {path: names(path) for path in files}
    named = {path: outputs for path, outputs in named.items() if outputs}
    planned = {path: [osp.join(out_dir, name) for name in outputs]
               for path, outputs in named.items()}
    if _collisions(planned) and named:
        root = osp.commonpath([osp.dirname(osp.abspath(path)) for path in named])
        planned = {path: [osp.join(out_dir, osp.relpath(osp.dirname(osp.abspath(path)), root),
                                   name) for name in outputs]
                   for path, outputs in named.items()}
    clashes = _collisions(planned)
    if clashes:
        listing = '; '.join(f'{osp.relpath(out)} <- {", ".join(paths)}'
                            for out, paths in list(clashes.items())[:10])
        raise RunRefused(f'{len(clashes)} output name(s) would be written by more than one '
                         f'input: {listing}. Rename the inputs or run them separately; '
                         'nothing was written')
    inputs = {osp.realpath(path): path for path in files}
    overwrites = [(output, inputs[osp.realpath(output)]) for outputs in planned.values()
                  for output in outputs if osp.realpath(output) in inputs]
    if overwrites:
        listing = '; '.join(f'{out} is the input {src}' for out, src in overwrites[:10])
        raise RunRefused(f'{len(overwrites)} output(s) would overwrite inputs of this run: '
                         f'{listing}. densekit never overwrites its inputs: choose another '
                         '--out; nothing was written')
    return planned


def build_model(cfg: Any, checkpoint: str, device: str, strict: bool = True
                ) -> torch.nn.Module:
    """Build ``cfg.model`` in the config's scope and load ``checkpoint`` (strictly by default).

    Raises:
        densekit.checkpoint.CheckpointMismatchError: The weights do not fit (``strict``).
        densekit.checkpoint.NotACheckpointError: ``checkpoint`` is not a checkpoint file.
    """
    from mmengine.registry import MODELS, init_default_scope

    from densekit.checkpoint import load_weights

    init_default_scope(cfg.get('default_scope', 'densekit'))
    model = MODELS.build(cfg.model)
    ckpt = load_weights(model, checkpoint, strict=strict, config=getattr(cfg, 'filename', None))
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    model.dataset_meta = (meta.get('dataset_meta') if isinstance(meta, dict) else None) or {}
    return model.to(device).eval()


def _encode(path: str, image: np.ndarray) -> bytes:
    return encode_image(image, osp.splitext(path)[1] or '.png', what=path)


def _stem(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


def _test_pipeline(cfg: Any, load_from_array: str) -> Any:
    """The config's test pipeline, reading from an in-memory array and without annotations."""
    from mmcv.transforms import Compose

    steps = [dict(step) for step in cfg.test_pipeline
             if 'LoadAnnotations' not in step['type'] and 'LoadImage' not in step['type']]
    return Compose([dict(type=load_from_array), *steps])


def _num_classes(cfg: Any, model: torch.nn.Module) -> int:
    head = getattr(model, 'decode_head', None)
    count = getattr(head, 'num_classes', None) or getattr(head, 'out_channels', None)
    return int(count or len(model.dataset_meta.get('classes') or ()) or 2)


def _image_item(array: Any) -> Dict[str, Any]:
    """A segmentation / detection item from an in-memory RGB (or gray) array."""
    return dict(img=bgr_from_array(array))


def _image_shape(item: Dict[str, Any]) -> tuple:
    return tuple(item['img'].shape)


def _segmentation_handler(cfg: Any, model: torch.nn.Module, options: InferOptions) -> Handler:
    from mmengine.dataset import pseudo_collate

    pipeline = _test_pipeline(cfg, 'mmseg.LoadImageFromNDArray')
    num_classes = _num_classes(cfg, model)
    palette = class_palette(num_classes, model.dataset_meta.get('palette'))
    label_dtype = np.uint8 if num_classes <= 256 else np.uint16

    def read(path: str) -> Dict[str, Any]:
        return dict(img=read_bgr(path), img_path=path)

    resizes = [step['type'] for step in cfg.test_pipeline if 'Resize' in str(step['type'])]
    if options.tile is not None and resizes:
        raise ValueError(f'--tile segments at the input resolution, but the test pipeline of '
                         f'this config resizes images ({", ".join(resizes)}); drop --tile')

    def windowed(item: Dict[str, Any]) -> bool:
        if resizes:
            return False
        height, width = item['img'].shape[:2]
        return options.tile is not None or height * width > WINDOWED_PIXELS

    def predict(items: List[Dict[str, Any]]) -> List[np.ndarray]:
        if any(windowed(item) for item in items):
            from densekit.tasks.segmentation.windowed import DEFAULT_OVERLAP, segment_windows

            tile = options.tile or DEFAULT_WINDOW
            overlap_px = int(tile * DEFAULT_OVERLAP) if options.overlap is None \
                else options.overlap
            # as restoration's tiles: a quarter of the overlap is left out at inner borders
            return [segment_windows(model, item['img'], tile, min(overlap_px / tile, 0.95),
                                    progress=options.progress, margin=overlap_px // 4
                                    ).astype(np.int64) for item in items]
        with torch.no_grad():
            results = model.test_step(pseudo_collate([pipeline(dict(item)) for item in items]))
        return [result.pred_sem_seg.data[0].cpu().numpy().astype(np.int64) for result in results]

    def write(path: str, item: Dict[str, Any], label: np.ndarray, outputs: List[str]) -> None:
        image_bgr = item['img']
        colour = palette[np.clip(label, 0, len(palette) - 1)][..., ::-1]
        overlay = cv2.addWeighted(image_bgr, 0.45, colour, 0.55, 0)
        atomic_write_bytes(_encode(outputs[0], label.astype(label_dtype)), outputs[0])
        atomic_write_bytes(_encode(outputs[1], overlay), outputs[1])

    return Handler(IMAGE_SUFFIXES, lambda path: [f'{_stem(path)}_label.png',
                                                 f'{_stem(path)}_overlay.png'],
                   read, predict, write, batchable=True, from_input=_image_item,
                   result=lambda source, item, label: label, batch_key=_image_shape)


def _detection_handler(cfg: Any, model: torch.nn.Module, options: InferOptions) -> Handler:
    from mmengine.dataset import pseudo_collate

    pipeline = _test_pipeline(cfg, 'mmdet.LoadImageFromNDArray')
    classes = list(model.dataset_meta.get('classes') or [])
    palette = box_palette(len(classes))

    def read(path: str) -> Dict[str, Any]:
        return dict(img=read_bgr(path), img_path=path)

    def predict(items: List[Dict[str, Any]]) -> List[Any]:
        with torch.no_grad():
            results = model.test_step(pseudo_collate([pipeline(dict(item)) for item in items]))
        return [result.pred_instances for result in results]

    def write(path: str, item: Dict[str, Any], pred: Any, outputs: List[str]) -> None:
        image_bgr = item['img']
        detections = []
        drawn = image_bgr.copy()
        for box, score, label in zip(pred.bboxes.tolist(), pred.scores.tolist(),
                                     pred.labels.tolist()):
            name = classes[label] if label < len(classes) else str(label)
            detections.append(dict(bbox_xyxy=[round(v, 2) for v in box], score=round(score, 4),
                                   label=int(label), category=name))
            if score >= options.score_thr:
                colour = tuple(int(c) for c in palette[label % len(palette)])
                x0, y0, x1, y1 = (int(round(v)) for v in box)
                cv2.rectangle(drawn, (x0, y0), (x1, y1), colour, 2)
                cv2.putText(drawn, f'{name} {score:.2f}', (x0, max(y0 - 3, 10)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
        record = dict(image=path, height=image_bgr.shape[0], width=image_bgr.shape[1],
                      detections=detections)
        atomic_write_bytes(json.dumps(record, indent=1).encode(), outputs[0])
        atomic_write_bytes(_encode(outputs[1], drawn), outputs[1])

    def result(source: Any, item: Dict[str, Any], pred: Any) -> Dict[str, np.ndarray]:
        return dict(boxes=pred.bboxes.detach().cpu().numpy().astype(np.float32).reshape(-1, 4),
                    scores=pred.scores.detach().cpu().numpy().astype(np.float32),
                    labels=pred.labels.detach().cpu().numpy().astype(np.int64))

    return Handler(IMAGE_SUFFIXES, lambda path: [f'{_stem(path)}.json',
                                                 f'{_stem(path)}_boxes.png'],
                   read, predict, write, batchable=True, from_input=_image_item,
                   result=result, batch_key=_image_shape)


HandlerFactory = Callable[[Any, torch.nn.Module, InferOptions], Handler]
HANDLERS: Dict[str, HandlerFactory] = {}


def register_handler(task: str, factory: HandlerFactory) -> None:
    """Register the inference handler factory of a task family (``cfg.task``)."""
    HANDLERS[task] = factory


register_handler('seg', _segmentation_handler)
register_handler('det', _detection_handler)


def detect_task(cfg: Any) -> str:
    """The config's task family: its ``task`` key, or a guess from the model type."""
    if cfg.get('task'):
        return cfg.task
    model_type = str(cfg.model.get('type', ''))
    if 'EncoderDecoder' in model_type:
        return 'seg'
    if cfg.model.get('bbox_head') is not None or cfg.model.get('roi_head') is not None:
        return 'det'
    raise ValueError(f"cannot tell the task of config {cfg.filename!r}: add task='seg' "
                     f'(one of {sorted(HANDLERS)}) to it')


def is_fatal(err: BaseException) -> bool:
    """Errors that cannot depend on one input and so stop the whole run (out of memory)."""
    if isinstance(err, MemoryError):
        return True
    oom = getattr(torch, 'OutOfMemoryError', None)
    if oom is not None and isinstance(err, oom):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ('out of memory' in text
                                              or "can't allocate memory" in text)


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ''
    if isinstance(err, (UnreadableInput, ValueError, OSError)) and text:
        return text
    return f'{type(err).__name__}: {text}' if text else type(err).__name__


class _OutputFolders:
    """Creates output folders on demand and removes the ones it made if they stay empty."""

    def __init__(self) -> None:
        self.created: List[str] = []

    def make(self, folder: str) -> None:
        missing = []
        folder = osp.abspath(folder or '.')
        while not osp.isdir(folder):
            missing.append(folder)
            folder = osp.dirname(folder)
        for path in reversed(missing):
            os.makedirs(path, exist_ok=True)
            self.created.append(path)

    def remove_empty(self) -> None:
        for path in sorted(self.created, key=len, reverse=True):
            if osp.isdir(path) and not os.listdir(path):
                os.rmdir(path)


def infer(config: Any, checkpoint: str, inputs: Sequence[str], out_dir: str,
          device: Optional[str] = None, *, strict: bool = True,
          cfg_options: Optional[dict] = None, options: Optional[InferOptions] = None,
          backend: str = 'pytorch') -> InferenceSummary:
    """Predict on every input and write the results under ``out_dir`` (see module docstring).

    Args:
        config: Config path or object.
        checkpoint: Checkpoint path.
        inputs: Files, folders or glob patterns.
        out_dir: Output folder (created only when something is written).
        device: ``'cpu'``, ``'cuda'``... (default: CUDA when available).

    The model and its predictions are those of :class:`densekit.Predictor` built from the
    same arguments, so files written here hold what ``Predictor.predict`` returns.
        strict: Refuse a checkpoint whose keys do not fit the model.
        cfg_options: Overrides merged into the config.
        options: Handler options (:class:`InferOptions`).
        backend: ``'pytorch'``, or ``'onnxruntime'`` with ``checkpoint`` an exported
            ``.onnx`` file (see :class:`densekit.Predictor`).

    Raises:
        ValueError: The config's task has no inference handler.
        RunRefused: Outputs would collide or overwrite inputs (nothing was written).
    """
    from densekit.predictor import Predictor

    options = options or InferOptions()
    cfg = load_config(config, cfg_options)
    task = detect_task(cfg)
    if task not in HANDLERS:
        raise ValueError(f'no inference handler for task {task!r}; available: {sorted(HANDLERS)}')
    if options.ensemble and task != 'medical':
        raise ValueError(f'--ensemble is supported for medical configs, not task {task!r}')
    predictor = Predictor(cfg, checkpoint, device or 'auto', backend, strict=strict,
                          options=options)
    handler = predictor.handler
    files, missing = expand_inputs(inputs, handler.suffixes)
    planned = plan_outputs(files, handler.outputs, out_dir)
    summary = InferenceSummary(inputs=list(planned), missing=missing)
    todo = list(planned)
    if options.skip_existing:
        summary.skipped = [path for path in todo if all(osp.isfile(o) for o in planned[path])]
        todo = [path for path in todo if path not in summary.skipped]
    folders = _OutputFolders()
    batch_size = options.batch_size if handler.batchable else 1

    def fail(path: str, err: BaseException) -> None:
        if is_fatal(err):
            raise err
        reason = _reason(err)
        summary.failed[path] = reason[len(path) + 2:] if reason.startswith(f'{path}: ') else reason
        tqdm.write(f'failed: {path}: {summary.failed[path]}')

    def write(path: str, item: Any, result: Any) -> None:
        try:
            for output in planned[path]:
                folders.make(osp.dirname(output))
            handler.write(path, item, result, planned[path])
        except Exception as err:
            fail(path, err)
            return
        summary.predicted.append(path)
        summary.written += planned[path]

    bar = tqdm(total=len(todo), desc=f'infer ({task})', unit='input', disable=not options.progress)
    try:
        for start in range(0, len(todo), batch_size):
            batch = []
            for path in todo[start:start + batch_size]:
                try:
                    batch.append((path, handler.read(path)))
                except Exception as err:
                    fail(path, err)
                    bar.update(1)
            if not batch:
                continue
            try:
                results = predictor.predict_items([item for _, item in batch], batch_size)
            except Exception as err:
                if len(batch) == 1 or is_fatal(err):
                    fail(batch[0][0], err)
                    bar.update(1)
                    continue
                results = None
            for index, (path, item) in enumerate(batch):
                if results is None:  # find which input of the batch fails
                    try:
                        result = handler.predict([item])[0]
                    except Exception as err:
                        fail(path, err)
                        bar.update(1)
                        continue
                else:
                    result = results[index]
                write(path, item, result)
                bar.update(1)
    finally:
        bar.close()
        if not summary.written:
            folders.remove_empty()
    _print_summary(summary, out_dir)
    return summary


def _print_summary(summary: InferenceSummary, out_dir: str) -> None:
    for name, reason in summary.missing.items():
        print(f'  matched nothing: {name}: {reason}')
    for name, reason in summary.failed.items():
        print(f'  failed: {name}: {reason}')
    skipped = f', {len(summary.skipped)} skipped (outputs exist)' if summary.skipped else ''
    line = (f'inference: {len(summary.predicted)} of {len(summary.inputs)} inputs predicted'
            f'{skipped}, {len(summary.written)} files written to {out_dir}')
    if summary.ok:
        print(f'{line}; all inputs succeeded')
        return
    problems = []
    if summary.failed:
        problems.append(f'{len(summary.failed)} of {len(summary.inputs)} inputs failed')
    if summary.missing:
        problems.append(f'{len(summary.missing)} input pattern(s) matched nothing')
    print(line)
    print(f'FAILED: {" and ".join(problems)} (listed above); exit status 1')
