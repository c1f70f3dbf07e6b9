"""``densekit infer``: run a trained model over images, folders or globs.

Inputs are expanded (files, folders, glob patterns), each is read and predicted in turn under a
progress bar, and outputs are written atomically. An unreadable or corrupt file is reported by
name and skipped; the summary counts what failed. Inputs are never overwritten.

Task handlers are chosen by the config's ``task`` key (``'seg'`` today); each writes its own
outputs. Segmentation writes ``<stem>_label.png`` (class indices) and ``<stem>_overlay.png``.
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


def _segmentation_handler(cfg: Any, model: torch.nn.Module) -> Callable[[str, np.ndarray, str],
                                                                       List[str]]:
    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate

    steps = [dict(step) for step in cfg.test_pipeline
             if 'LoadAnnotations' not in step['type'] and 'LoadImage' not in step['type']]
    pipeline = Compose([dict(type='mmseg.LoadImageFromNDArray'), *steps])
    palette = np.asarray(model.dataset_meta.get('palette') or
                         np.random.default_rng(0).integers(0, 255, (256, 3)), np.uint8)

    def handle(path: str, image_bgr: np.ndarray, out_dir: str) -> List[str]:
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

    return handle


HANDLERS: Dict[str, Callable] = {'seg': _segmentation_handler}


def detect_task(cfg: Any) -> str:
    """The config's task family: its ``task`` key, or a guess from the model type."""
    if cfg.get('task'):
        return cfg.task
    model_type = str(cfg.model.get('type', ''))
    if 'EncoderDecoder' in model_type:
        return 'seg'
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
    handle = HANDLERS[task](cfg, model)
    files, missing = expand_inputs(inputs)
    summary = InferenceSummary(failed=dict(missing))
    os.makedirs(out_dir, exist_ok=True)
    for path in tqdm(files, desc=f'infer ({task})', unit='img'):
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            summary.failed[path] = 'unreadable or corrupt image'
            tqdm.write(f'skipped {path}: unreadable or corrupt image')
            continue
        try:
            summary.written += handle(path, image, out_dir)
        except (ValueError, RuntimeError, OSError) as err:
            summary.failed[path] = str(err)
            tqdm.write(f'skipped {path}: {err}')
    predicted = len(files) - sum(1 for key in summary.failed if key not in missing)
    print(f'inference done: {predicted} of {len(files)} '
          f'images predicted, {len(summary.written)} files written to {out_dir}, '
          f'{len(summary.failed)} failed')
    for name, reason in summary.failed.items():
        print(f'  failed: {name}: {reason}')
    return summary
