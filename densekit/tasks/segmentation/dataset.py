"""mmseg dataset class for the built-in synthetic shapes data."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from mmseg.datasets import BaseSegDataset

from densekit.registry import DATASETS
from densekit.tasks.segmentation.synthetic import CLASSES, PALETTE


@DATASETS.register_module()
class ShapesDataset(BaseSegDataset):
    """Synthetic shapes in mmseg's ``img_dir/ann_dir`` layout (see ``synthetic.py``).

    Args:
        data_root: Dataset root holding ``img_dir/`` and ``ann_dir/``.
        data_prefix: ``dict(img_path=..., seg_map_path=...)`` relative to ``data_root``.
        pipeline: mmseg/mmcv transforms.
        test_mode: Passed to mmengine's ``BaseDataset``.
        indices: Keep only these samples (an int keeps the first N).
        lazy_init: Defer loading the annotation list.
    """

    METAINFO = dict(classes=CLASSES, palette=PALETTE)

    def __init__(self, data_root: str, *, data_prefix: Optional[dict] = None,
                 pipeline: Sequence[Any] = (), test_mode: bool = False,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 lazy_init: bool = False) -> None:
        super().__init__(img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
                         data_root=data_root,
                         data_prefix=data_prefix or dict(img_path='img_dir/train',
                                                         seg_map_path='ann_dir/train'),
                         pipeline=list(pipeline), test_mode=test_mode, indices=indices,
                         lazy_init=lazy_init)
