"""Built-in detection data: the synthetic shapes scenes with COCO-format box annotations.

Scenes come from the same renderer as the segmentation data (overlapping shapes, random colours
and textures, noise). Each drawn shape becomes one COCO annotation whose box is the tight box
of its *visible* pixels. A shape that is mostly hidden (less than ``min_visible`` of it shows)
is marked ``iscrowd=1``, which COCO evaluation and mmdet training treat as "ignore". Layout,
as mmdet's ``CocoDataset`` reads it::

    root/images/{train,val}/00000.png
    root/annotations/instances_{train,val}.json
    root/meta.json
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Union

import numpy as np

from densekit.fileio import atomic_write_bytes, atomic_write_text
from densekit.tasks.segmentation.synthetic import CLASSES, encode_png, is_generated, render_scene

DET_CLASSES = CLASSES[1:]  # no background category in COCO
GENERATOR_VERSION = 3


def scene_annotations(instances: np.ndarray, drawn: list[tuple[int, int]], image_id: int,
                      first_ann_id: int, min_visible: float = 0.4,
                      min_area: int = 16) -> list[dict]:
    """COCO annotations (xywh boxes of visible pixels) for one rendered scene."""
    anns = []
    for index, (cls, full_area) in enumerate(drawn, start=1):
        ys, xs = np.nonzero(instances == index)
        if len(ys) < min_area:
            continue  # (almost) fully hidden: not an object in this image
        x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        anns.append(dict(id=first_ann_id + len(anns), image_id=image_id, category_id=cls,
                         bbox=[x0, y0, x1 - x0, y1 - y0], area=float(len(ys)),
                         iscrowd=int(len(ys) < min_visible * full_area)))
    return anns


def generate_detection_dataset(root: Union[str, Path], *, num_train: int = 300,
                               num_val: int = 50, size: int = 160, seed: int = 0,
                               force: bool = False) -> Path:
    """Write the synthetic detection dataset under ``root`` and return ``root``.

    Same seed, same bytes. Reuses existing files when ``root/meta.json`` matches.

    Raises:
        ValueError: If a count or the image size is out of range.
    """
    root, meta = Path(root), dict(generator='shapes-coco', version=GENERATOR_VERSION,
                                  classes=list(DET_CLASSES))
    if is_generated(root, meta, num_train=num_train, num_val=num_val, size=size, seed=seed,
                    force=force):
        return root
    categories = [dict(id=i, name=name) for i, name in enumerate(DET_CLASSES, start=1)]
    for split, count, offset in (('train', num_train, 0), ('val', num_val, 1_000_000)):
        images, annotations = [], []
        for index in range(count):
            rng = np.random.default_rng([seed, 7, offset + index])
            image, _, instances, drawn = render_scene(rng, size)
            name = f'{index:05d}.png'
            atomic_write_bytes(encode_png(image[..., ::-1]), root / 'images' / split / name)
            images.append(dict(id=index, file_name=name, height=size, width=size))
            annotations += scene_annotations(instances, drawn, index, len(annotations) + 1)
        coco = dict(images=images, annotations=annotations, categories=categories)
        atomic_write_text(json.dumps(coco), root / 'annotations' / f'instances_{split}.json')
    atomic_write_text(json.dumps(meta, indent=1), root / 'meta.json')
    return root
