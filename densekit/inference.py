"""``densekit infer``: run a trained model over images, folders or globs.

Inputs are expanded (files, folders, glob patterns), each is read and predicted in turn under a
progress bar, and outputs are written atomically. An unreadable or corrupt file is reported by
name and skipped; the summary counts what failed. Inputs are never overwritten.

Task handlers are chosen by the config's ``task`` key. A handler factory takes the config and
the loaded model and returns a :class:`Handler`: the file suffixes it accepts and a callable
``handle(path, out_dir) -> written paths`` that reads the file itself (so it controls bit depth,
alpha, NIfTI headers, ...) and raises :class:`UnreadableInput` for a corrupt file. Register a
new task with :func:`register_handler`. Segmentation writes ``<stem>_label.png`` (class
indices) and ``<stem>_overlay.png``.
"""
from __future__ import annotations

import glob
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from densekit.apis import load_config
from densekit.fileio import atomic_write_bytes, refuse_overwrite

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


class UnreadableInput(ValueError):
    """An input file could not be decoded; the run reports it and goes on."""


@dataclass
class Handler:
    """What a task's inference needs: accepted suffixes and a per-file function."""

    suffixes: Sequence[str]
    handle: Callable[[str, str], List[str]]


@dataclass
class InferenceSummary:
    """What an inference run wrote and what it skipped (path -> reason)."""

    written: List[str] = field(default_factory=list)
    failed: Dict[str, str] = field(default_factory=dict)


def expand_inputs(inputs: Sequence[str], suffixes: Sequence[str] = IMAGE_SUFFIXES
                  ) -> tuple[List[str], Dict[str, str]]:
    """Expand files, folders and glob patterns into a sorted, de-duplicated file list.

    Returns the files and a dict of inputs that matched nothing (input -> reason).
    """
    files: List[str] = []
    missing: Dict[str, str] = {}
    for item in inputs:
        if osp.isdir(item):
            found = sorted(osp.join(item, name) for name in os.listdir(item)
                           if name.lower().endswith(tuple(suffixes)))
        elif osp.isfile(item):
            found = [item]
        else:
            found = sorted(path for path in glob.glob(item, recursive=True) if osp.isfile(path))
        if not found:
            missing[item] = 'no such file, or no matching images'
        files += [path for path in found if path not in files]
    return files, missing


def build_model(cfg: Any, checkpoint: str, device: str) -> torch.nn.Module:
    """Build ``cfg.model`` in the config's scope and load ``checkpoint`` safely."""
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint

    init_default_scope(cfg.get('default_scope', 'densekit'))
    model = MODELS.build(cfg.model)
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu')
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    model.dataset_meta = meta.get('dataset_meta') or {}
    return model.to(device).eval()


def _encode(path: str, image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(osp.splitext(path)[1] or '.png', image)
    if not ok:
        raise RuntimeError(f'could not encode {path}')
    return buf.tobytes()


def _segmentation_handler(cfg: Any, model: torch.nn.Module) -> Handler:
    from mmengine.dataset import pseudo_collate

    pipeline = _test_pipeline(cfg, 'mmseg.LoadImageFromNDArray')
    palette = np.asarray(model.dataset_meta.get('palette') or
                         np.random.default_rng(0).integers(0, 255, (256, 3)), np.uint8)

    def handle(path: str, out_dir: str) -> List[str]:
        image_bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if image_bgr is None:
            raise UnreadableInput('unreadable or corrupt image')
        data = pipeline(dict(img=image_bgr, img_path=path))
        with torch.no_grad():
            result = model.test_step(pseudo_collate([data]))[0]
        label = result.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
        colour = palette[label % len(palette)][..., ::-1]
        overlay = cv2.addWeighted(image_bgr, 0.45, colour, 0.55, 0)
        stem = osp.splitext(osp.basename(path))[0]
        outputs = [osp.join(out_dir, f'{stem}_label.png'), osp.join(out_dir, f'{stem}_overlay.png')]
        refuse_overwrite(outputs[0], [path])
        refuse_overwrite(outputs[1], [path])
        atomic_write_bytes(_encode(outputs[0], label), outputs[0])
        atomic_write_bytes(_encode(outputs[1], overlay), outputs[1])
        return outputs

    return Handler(IMAGE_SUFFIXES, handle)


def _test_pipeline(cfg: Any, load_from_array: str) -> Any:
    """The config's test pipeline, reading from an in-memory array and without annotations."""
    from mmcv.transforms import Compose

    steps = [dict(step) for step in cfg.test_pipeline
             if 'LoadAnnotations' not in step['type'] and 'LoadImage' not in step['type']]
    return Compose([dict(type=load_from_array), *steps])


def _detection_handler(cfg: Any, model: torch.nn.Module, score_thr: float = 0.3) -> Handler:
    import json

    from mmengine.dataset import pseudo_collate

    pipeline = _test_pipeline(cfg, 'mmdet.LoadImageFromNDArray')
    classes = list(model.dataset_meta.get('classes') or [])
    palette = np.random.default_rng(1).integers(60, 255, (max(len(classes), 1), 3))

    def handle(path: str, out_dir: str) -> List[str]:
        image_bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if image_bgr is None:
            raise UnreadableInput('unreadable or corrupt image')
        with torch.no_grad():
            result = model.test_step(pseudo_collate([pipeline(dict(img=image_bgr,
                                                                   img_path=path))]))[0]
        pred = result.pred_instances
        detections = []
        drawn = image_bgr.copy()
        for box, score, label in zip(pred.bboxes.tolist(), pred.scores.tolist(),
                                     pred.labels.tolist()):
            name = classes[label] if label < len(classes) else str(label)
            detections.append(dict(bbox_xyxy=[round(v, 2) for v in box], score=round(score, 4),
                                   label=int(label), category=name))
            if score >= score_thr:
                colour = tuple(int(c) for c in palette[label % len(palette)])
                x0, y0, x1, y1 = (int(round(v)) for v in box)
                cv2.rectangle(drawn, (x0, y0), (x1, y1), colour, 2)
                cv2.putText(drawn, f'{name} {score:.2f}', (x0, max(y0 - 3, 10)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
        stem = osp.splitext(osp.basename(path))[0]
        outputs = [osp.join(out_dir, f'{stem}.json'), osp.join(out_dir, f'{stem}_boxes.png')]
        for output in outputs:
            refuse_overwrite(output, [path])
        record = dict(image=path, height=image_bgr.shape[0], width=image_bgr.shape[1],
                      detections=detections)
        atomic_write_bytes(json.dumps(record, indent=1).encode(), outputs[0])
        atomic_write_bytes(_encode(outputs[1], drawn), outputs[1])
        return outputs

    return Handler(IMAGE_SUFFIXES, handle)


HANDLERS: Dict[str, Callable[[Any, torch.nn.Module], Handler]] = {}


def register_handler(task: str, factory: Callable[[Any, torch.nn.Module], Handler]) -> None:
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


def infer(config: Any, checkpoint: str, inputs: Sequence[str], out_dir: str,
          device: Optional[str] = None) -> InferenceSummary:
    """Predict on every input image and write results to ``out_dir``.

    Raises:
        ValueError: If the config's task has no inference handler.
    """
    cfg = load_config(config)
    task = detect_task(cfg)
    if task not in HANDLERS:
        raise ValueError(f'no inference handler for task {task!r}; available: {sorted(HANDLERS)}')
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = build_model(cfg, checkpoint, device)
    handler = HANDLERS[task](cfg, model)
    files, missing = expand_inputs(inputs, handler.suffixes)
    summary = InferenceSummary(failed=dict(missing))
    os.makedirs(out_dir, exist_ok=True)
    for path in tqdm(files, desc=f'infer ({task})', unit='file'):
        try:
            summary.written += handler.handle(path, out_dir)
        except (ValueError, RuntimeError, OSError) as err:
            summary.failed[path] = str(err)
            tqdm.write(f'skipped {path}: {err}')
    predicted = len(files) - sum(1 for key in summary.failed if key not in missing)
    print(f'inference done: {predicted} of {len(files)} '
          f'inputs predicted, {len(summary.written)} files written to {out_dir}, '
          f'{len(summary.failed)} failed')
    for name, reason in summary.failed.items():
        print(f'  failed: {name}: {reason}')
    return summary
