"""A visualisation backend that writes each drawn picture as ``<save_dir>/<name>.png``."""
from __future__ import annotations

import os.path as osp
from typing import Any

import numpy as np
from mmengine.visualization.vis_backend import BaseVisBackend

from densekit.fileio import atomic_write_bytes
from densekit.imageio import encode_image
from densekit.registry import VISBACKENDS


@VISBACKENDS.register_module()
class FlatImageBackend(BaseVisBackend):
    """Save images flat and atomically; scalars and configs are ignored.

    mmengine's ``LocalVisBackend`` nests pictures under ``vis_data/vis_image`` and appends the
    step to the name; prediction pictures are easier to browse as one folder named after the
    input files.
    """

    def __init__(self, save_dir: str) -> None:
        super().__init__(save_dir)

    @property
    def experiment(self) -> Any:  # noqa: D102
        return self

    def _init_env(self) -> None:
        pass

    def add_image(self, name: str, image: np.ndarray, step: int = 0, **kwargs: Any) -> None:
        """Write ``image`` (RGB uint8) to ``<save_dir>/<stem of name>.png``."""
        stem = osp.splitext(osp.basename(str(name)))[0] or f'image_{step}'
        png = encode_image(image, '.png', rgb=True, what=f'picture {name!r}')
        atomic_write_bytes(png, osp.join(self._save_dir, f'{stem}.png'))
