"""``densekit.Predictor``: a trained model called from Python on arrays, files or volumes.

One class for every task family, built on the same task handlers as ``densekit infer`` (so the
two give the same results: ``infer`` itself runs through a Predictor)::

    predictor = densekit.Predictor('configs/segmentation/fpn_r18-tiny_1xb8-2000i_shapes-128x128.py',
                                   'work_dirs/fpn/iter_2000.pth')
    labels = predictor.predict(image)            # (H, W) int64 class indices
    many = predictor.predict([a, b, c], batch_size=2)

What :meth:`Predictor.predict` returns, per task (``cfg.task``):

* ``seg``: an ``(H, W)`` int64 array of class indices at the input's size;
* ``det``: ``dict(boxes=(N, 4) float32 xyxy in input pixels, scores=(N,) float32,
  labels=(N,) int64)``;
* ``sr`` / ``derain``: an array of the input's dtype and channel layout (gray, gray+alpha,
  RGB, RGBA), tiled as ``densekit infer`` tiles;
* ``medical``: the argmax labels in the input's geometry: a nibabel image for a nibabel image
  or a file, an ``(X, Y, Z)`` array for an array.

Inputs are numpy arrays (images ``(H, W)`` / ``(H, W, C)`` in RGB order, uint8, uint16 or
float in [0, 1]; volumes ``(X, Y, Z)`` / ``(C, X, Y, Z)`` in nibabel's voxel order, taken at the
config's target spacing), file paths, or nibabel images. ``batch_size`` groups inputs of equal
size into one forward pass (never padding one to another's size), so a batch gives the same
results as the same inputs one at a time. Checkpoints load strictly.
"""
from __future__ import annotations

import os
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Union

import torch

from densekit.apis import load_config
from densekit.errors import positive_int
from densekit.inference import HANDLERS, Handler, InferOptions, build_model, detect_task

__all__ = ['Predictor', 'BACKENDS']

BACKENDS = ('pytorch', 'onnxruntime')


def _resolve_device(device: Optional[str]) -> str:
    if device in (None, 'auto'):
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu', 'cuda' or 'auto', got "
                        f'{type(device).__name__}')
    torch.device(device)  # raises a clear RuntimeError for a malformed name
    return device


def _is_batch(inputs: Any) -> bool:
    return isinstance(inputs, (list, tuple))


class Predictor:
    """A model built from a config and a checkpoint, ready to predict (see the module docs).

    Args:
        config: Config path, ``Config`` or dict (the training config).
        checkpoint: Checkpoint path (loaded strictly: a checkpoint that does not fit the model
            raises an error listing the keys).
        device: ``'auto'`` (CUDA when available), ``'cpu'``, ``'cuda'``, ``'cuda:1'``...
        backend: ``'pytorch'``, or ``'onnxruntime'`` with ``checkpoint`` the ``.onnx`` file
            of ``densekit export`` (every task family; CPU): the same pre- and
            post-processing around the exported network.
        strict: Refuse a checkpoint whose keys do not fit the model.
        cfg_options: Overrides merged into the config.
        options: Task options (:class:`~densekit.inference.InferOptions`: tile, overlap,
            channel axis, medical ensembles...).

    Raises:
        ValueError: Unknown backend, or a config whose task has no handler.
    """

    def __init__(self, config: Any, checkpoint: str, device: Optional[str] = 'auto',
                 backend: str = 'pytorch', *, strict: bool = True,
                 cfg_options: Optional[dict] = None,
                 options: Optional[InferOptions] = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(f'checkpoint must be a path, got {type(checkpoint).__name__}')
        self.options = options or InferOptions()
        self.cfg = load_config(config, cfg_options)
        self.task = detect_task(self.cfg)
        if self.task not in HANDLERS:
            raise ValueError(f'no inference handler for task {self.task!r}; available: '
                             f'{sorted(HANDLERS)}')
        if self.options.ensemble and self.task != 'medical':
            raise ValueError(f'ensembles are supported for medical configs, not task '
                             f'{self.task!r}')
        self.backend = backend
        self.checkpoint = os.fspath(checkpoint)
        if backend == 'onnxruntime':
            self.device = 'cpu'
            self.model = self._onnx_model()
        else:
            self.device = _resolve_device(device)
            self.model = build_model(self.cfg, str(checkpoint), self.device, strict=strict)
        self.handler: Handler = HANDLERS[self.task](self.cfg, self.model, self.options)

    def _onnx_model(self) -> torch.nn.Module:
        """The config's model (its pipeline, windows, tiling) with the network replaced by an
        onnxruntime session of ``checkpoint``, a file ``densekit export`` wrote."""
        from mmengine.registry import MODELS, init_default_scope

        from densekit.export import bind_session, onnx_session, read_metadata

        if not self.checkpoint.endswith('.onnx'):
            raise ValueError(f"backend='onnxruntime' takes the .onnx file densekit export "
                             f'wrote, got {self.checkpoint!r}')
        if self.options.ensemble:
            raise ValueError("ensembles need backend='pytorch'")
        meta = read_metadata(self.checkpoint)
        if meta.get('task') != self.task:
            raise ValueError(f'{self.checkpoint} was exported from a {meta.get("task")!r} '
                             f'config, but the config is {self.task!r}')
        init_default_scope(self.cfg.get('default_scope', 'densekit'))
        model = MODELS.build(self.cfg.model).eval()
        model.dataset_meta = dict(meta.get('dataset_meta') or {})
        return bind_session(model, self.task, onnx_session(self.checkpoint))

    def read(self, source: Any) -> Any:
        """One input as the handler's item: a file is read, an in-memory input converted."""
        if isinstance(source, (str, os.PathLike)):
            return self.handler.read(os.fspath(source))
        if self.handler.from_input is None:
            raise TypeError(f'task {self.task!r} takes file paths only, got '
                            f'{type(source).__name__}')
        return self.handler.from_input(source)

    def predict_items(self, items: Sequence[Any], batch_size: int = 1) -> List[Any]:
        """The handler's predictions for read items, in order.

        With ``batch_size > 1`` and a batchable task, items of equal size (the handler's
        ``batch_key``) share forward passes of up to ``batch_size``; the others run alone.
        """
        positive_int(batch_size, 'batch_size')
        items = list(items)
        if batch_size == 1 or not self.handler.batchable or len(items) < 2:
            return [self.handler.predict([item])[0] for item in items]
        key = self.handler.batch_key or id
        groups: Dict[Any, List[int]] = defaultdict(list)
        for index, item in enumerate(items):
            groups[key(item)].append(index)
        results: List[Any] = [None] * len(items)
        for indices in groups.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                for index, result in zip(chunk, self.handler.predict([items[i] for i in chunk])):
                    results[index] = result
        return results

    def predict(self, inputs: Union[Any, Sequence[Any]], batch_size: int = 1) -> Any:
        """Predict one input (returns one result) or a list of inputs (returns a list).

        A file that cannot be read raises the reader's error naming it
        (:class:`~densekit.imageio.UnreadableInput` for a corrupt image).
        """
        batch = _is_batch(inputs)
        sources = list(inputs) if batch else [inputs]
        items = [self.read(source) for source in sources]
        raw = self.predict_items(items, batch_size)
        finish = self.handler.result
        if finish is None:
            raise TypeError(f'task {self.task!r} has no in-memory result')
        results = [finish(source, item, pred) for source, item, pred in zip(sources, items, raw)]
        return results if batch else results[0]

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(task={self.task!r}, model={type(self.model).__name__}, '
                f'device={self.device!r}, backend={self.backend!r})')
