"""``densekit browse``: pictures of samples exactly as the training pipeline produces them.

Each sample is taken from the config's dataset of the chosen split with its pipeline applied
(random crops, flips, photometric changes... included, so every call draws new ones) and drawn:

* **seg** - image | label colours | overlay, with a legend of the class colours;
* **det** - the image with its ground-truth boxes and class names;
* **sr / derain** - the LQ input (enlarged to the GT size, nearest) beside the GT patch;
* **medical** - axial, coronal and sagittal slices through the patch, one row per channel,
  with the label overlay (:func:`densekit.tasks.medical3d.viz.render_slices`).

Pictures are at least ``min_size`` pixels high (small patches are enlarged, nearest).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch

from densekit.analysis.drawing import (
    colourise,
    draw_boxes,
    labelled_row,
    legend,
    overlay,
    png_bytes,
    stack_rows,
    zoom,
)
from densekit.fileio import atomic_write_bytes

__all__ = ['browse', 'draw_sample']


def _image(inputs: torch.Tensor, bgr: bool) -> np.ndarray:
    """``(C, H, W)`` tensor in 0..255 -> ``(H, W, 3)`` uint8 RGB."""
    arr = inputs.detach().float().cpu().numpy().transpose(1, 2, 0)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    arr = np.clip(np.rint(arr[..., :3]), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr[..., ::-1] if bgr else arr)


def _enlarge_factor(height: int, min_size: int) -> int:
    return max(1, -(-min_size // max(height, 1)))


def _palette(meta: Dict[str, Any], count: int) -> np.ndarray:
    from densekit.palette import class_palette

    return class_palette(count, meta.get('palette'))


def draw_sample(task: str, sample: Dict[str, Any], meta: Dict[str, Any],
                min_size: int = 256) -> np.ndarray:
    """One RGB picture of a packed training sample (``{'inputs', 'data_samples'}``).

    Raises:
        ValueError: A task without a drawing, or a sample without the fields it needs.
    """
    inputs, data = sample['inputs'], sample['data_samples']
    if task == 'seg':
        image = _image(inputs, bgr=True)
        if 'gt_sem_seg' not in data:
            raise ValueError('the sample has no gt_sem_seg: does the pipeline load annotations?')
        labels = data.gt_sem_seg.data[0].cpu().numpy()
        names = list(meta.get('classes') or [])
        palette = _palette(meta, max(len(names), int(labels[labels != 255].max(initial=0)) + 1))
        f = _enlarge_factor(image.shape[0], min_size)
        row = labelled_row([zoom(image, f), zoom(colourise(labels, palette), f),
                            zoom(overlay(image, labels, palette), f)],
                           ['augmented image', 'label (white: ignored)', 'overlay'])
        names = names or [str(c) for c in range(len(palette))]
        return stack_rows([row, legend(names, palette, width=row.shape[1])])
    if task == 'det':
        image = _image(inputs, bgr=True)
        f = _enlarge_factor(image.shape[0], min_size)
        gt = data.gt_instances
        boxes = gt.bboxes.tensor if hasattr(gt.bboxes, 'tensor') else gt.bboxes
        names = list(meta.get('classes') or [])
        palette = _palette(meta, max(len(names), 1))
        drawn = draw_boxes(zoom(image, f), boxes.cpu().numpy() * f, gt.labels.tolist(), names,
                           palette)
        return labelled_row([drawn], [f'augmented image, {len(gt.labels)} boxes'])
    if task in ('sr', 'derain'):
        lq = _image(inputs, bgr=False)
        gt = _image(data.gt_img, bgr=False)
        scale = gt.shape[0] // max(lq.shape[0], 1)
        f = _enlarge_factor(gt.shape[0], min_size)
        return labelled_row([zoom(zoom(lq, max(scale, 1)), f), zoom(gt, f)],
                            [f'LQ input {lq.shape[1]}x{lq.shape[0]}',
                             f'GT {gt.shape[1]}x{gt.shape[0]}'])
    if task == 'medical':
        from densekit.tasks.medical3d.viz import render_slices

        volume = inputs.detach().float().cpu().numpy()  # (C, D, H, W), canonical z, y, x
        labels = data.gt_seg.cpu().numpy() if torch.is_tensor(data.gt_seg) else data.gt_seg
        spacing = tuple(data.get('spacing') or (1.0, 1.0, 1.0))
        affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
        names = list(meta.get('channel_names') or [f'channel {c}' for c in range(len(volume))])
        rows = []
        for c, channel in enumerate(volume):
            picture = render_slices(channel.transpose(2, 1, 0), np.asarray(labels).transpose(
                2, 1, 0), affine, height=max(min_size, 128))[..., ::-1]
            rows.append(labelled_row([np.ascontiguousarray(picture)],
                                     [f'{names[c] if c < len(names) else c}: axial | coronal '
                                      f'| sagittal, patch {list(channel.shape)}']))
        classes = list(meta.get('classes') or [])
        if classes:
            from densekit.palette import LABEL_COLOURS
            rows.append(legend(classes, LABEL_COLOURS, width=rows[0].shape[1]))
        return stack_rows(rows)
    raise ValueError(f'task {task!r} has no sample drawing; known: seg, det, sr, derain, '
                     'medical')


def browse(config: Any, out_dir: Union[str, Path], num: int = 8, split: str = 'train',
           cfg_options: Optional[dict] = None, seed: Optional[int] = None,
           min_size: int = 256) -> List[Path]:
    """Write ``num`` pictures of pipeline outputs of ``split`` into ``out_dir``.

    Returns the written paths (``<index>_<file stem>.png``). Samples cycle through the
    dataset when ``num`` is larger than it.

    Raises:
        ValueError: ``num`` < 1, an unknown split, or a config without that dataloader.
    """
    from mmengine.registry import DATASETS, init_default_scope

    import densekit  # noqa: F401  (registers densekit's modules)
    from densekit.apis import load_config
    from densekit.inference import detect_task

    if not isinstance(num, int) or num < 1:
        raise ValueError(f'num={num!r}: expected an integer >= 1')
    if split not in ('train', 'val', 'test'):
        raise ValueError(f"split={split!r}: expected 'train', 'val' or 'test'")
    cfg = load_config(config, cfg_options)
    loader = cfg.get(f'{split}_dataloader')
    if loader is None:
        raise ValueError(f'split={split!r}: the config has no {split}_dataloader')
    task = detect_task(cfg)
    init_default_scope(cfg.get('default_scope', 'densekit'))
    if seed is not None:
        import random
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
    dataset = DATASETS.build(loader.dataset)
    if len(dataset) == 0:
        raise ValueError(f'the {split} dataset of the config is empty')
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(num):
        sample = dataset[index % len(dataset)]
        picture = draw_sample(task, sample, dict(dataset.metainfo), min_size)
        meta = sample['data_samples'].metainfo
        source = (meta.get('img_path') or meta.get('gt_path') or meta.get('case_id')
                  or f'sample{index % len(dataset)}')
        path = out / f'{index:03d}_{Path(str(source)).name.split(".")[0]}.png'
        atomic_write_bytes(png_bytes(picture), str(path))
        written.append(path)
    return written
