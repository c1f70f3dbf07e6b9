"""``densekit bench models``: whole models the way users meet densekit's necks and heads.

Three stock OpenMMLab models, each against itself with only the neck/head type switched to
densekit's (same weights, loaded from the stock model's state dict, same inputs):

* mmseg DeepLabV3 R50-D8, Cityscapes 512x1024: ``decode_head.type`` -> ``densekit.ASPPHead``
  (the auxiliary mmseg FCNHead stays);
* mmseg Semantic FPN R50, ADE20K 512x512: ``neck.type`` -> ``densekit.FPN`` and
  ``decode_head.type`` -> ``densekit.FPNHead``;
* mmdet RetinaNet R50 FPN, COCO 800x1344 (1333x800 padded to 32): ``neck.type`` ->
  ``densekit.FPN``.

The model dicts are the packages' own configs (``mmseg/.mim/configs``, ``mmdet/.mim/configs``),
with SyncBN -> BN (one process) and no pretrained weights (random init; BatchNorm statistics
randomised). Rows, at batch 1 and 2:

* **train step**: ``model.loss`` + ``parse_losses`` + backward + SGD step;
* **inference**: ``model.predict`` in eval mode under ``torch.inference_mode`` (post-processing
  and, for RetinaNet, NMS included).

Time is the median of ``repeats`` alternating runs after one warm-up. **Where the time goes**:
hooks on the backbone and the neck record, in the same timed runs, how long each forward took
and (training) how long each backward took, from the moment the last gradient reached the
module's outputs (until the backward ended for the backbone, until the last gradient reached
the neck's inputs for the neck; an estimate where the head's and the neck's backward overlap).
The rest of the step is the neck, the heads and the loss (or post-processing), and the table
gives its time for both models and their ratio, and the neck's own: with a ResNet-50 most of
each step is the backbone, which both models share, so the whole-model ratio is bounded by the
backbone's share.

``quick`` runs each model at 1/8 width on small images, to check that the code runs.
"""
from __future__ import annotations

import copy
import logging
import os.path as osp
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from benchmarks.harness import Row, measure_pair, randomize_norms_, resolve_device, suite

__all__ = ['models_suite', 'MODEL_CASES', 'build_pair']


@dataclass(frozen=True)
class ModelCase:
    """One whole-model benchmark: a stock config and the keys switched to densekit."""

    name: str
    package: str  # 'mmseg' or 'mmdet'
    config: str  # relative to the package's .mim/configs
    switch: Dict[str, str]  # dotted model key -> densekit type
    image: Tuple[int, int]  # H, W (full size)
    quick_image: Tuple[int, int]


MODEL_CASES: List[ModelCase] = [
    ModelCase('DeepLabV3 R50-D8 (decode_head densekit.ASPPHead)', 'mmseg',
              'deeplabv3/deeplabv3_r50-d8_4xb2-80k_cityscapes-512x1024.py',
              {'decode_head': 'densekit.ASPPHead'}, (512, 1024), (64, 96)),
    ModelCase('Semantic FPN R50 (neck densekit.FPN, decode_head densekit.FPNHead)', 'mmseg',
              'sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py',
              {'neck': 'densekit.FPN', 'decode_head': 'densekit.FPNHead'}, (512, 512),
              (64, 64)),
    ModelCase('RetinaNet R50 FPN (neck densekit.FPN)', 'mmdet',
              'retinanet/retinanet_r50_fpn_1x_coco.py',
              {'neck': 'densekit.FPN'}, (800, 1344), (64, 64)),
]


def _stock_model_cfg(case: ModelCase) -> dict:
    """The package's model dict: SyncBN -> BN, no pretrained weights, no data preprocessor."""
    import importlib

    from mmengine.config import Config

    package = importlib.import_module(case.package)
    path = osp.join(osp.dirname(package.__file__), '.mim', 'configs', case.config)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{case.package} config {case.config} not found at {path} '
                                f'(the {case.package} wheel ships its configs under .mim)')
    model = Config.fromfile(path).model.to_dict()

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get('type') == 'SyncBN':
                node = {**node, 'type': 'BN'}
            return {k: clean(v) for k, v in node.items()
                    if k != 'pretrained' and not (k == 'init_cfg' and isinstance(v, dict)
                                                  and v.get('type') == 'Pretrained')}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    model = clean(model)
    model.pop('data_preprocessor', None)
    model['type'] = f'{case.package}.{model["type"]}'
    return model


def _narrow(model: dict, div: int) -> dict:
    """The same architecture at 1/``div`` width (quick mode)."""
    def scale(value: Any) -> Any:
        if isinstance(value, int):
            return max(value // div, 1)
        return [max(v // div, 1) for v in value]

    model = copy.deepcopy(model)
    model['backbone'].update(base_channels=64 // div, stem_channels=64 // div)
    for key in ('neck', 'decode_head', 'auxiliary_head', 'bbox_head'):
        part = model.get(key)
        if not part:
            continue
        for arg in ('in_channels', 'channels', 'out_channels', 'feat_channels'):
            if arg in part:
                part[arg] = scale(part[arg])
    return model


def build_pair(case: ModelCase, quick: bool = False) -> Tuple[nn.Module, nn.Module]:
    """(densekit-switched model, stock peer) with identical weights, in eval mode."""
    from mmengine.config import ConfigDict
    from mmengine.logging import MMLogger

    import densekit  # noqa: F401  (registers the densekit types)
    from densekit.registry import MODELS

    stock = _stock_model_cfg(case)
    if quick:
        stock = _narrow(stock, 8)
    ours_cfg = copy.deepcopy(stock)
    for key, new_type in case.switch.items():
        ours_cfg[key]['type'] = new_type
    torch.manual_seed(0)
    peer = MODELS.build(ConfigDict(stock))
    # the models' own initialisation (e.g. RetinaNet's focal-loss prior on the class logits,
    # without which every anchor scores ~0.5 and NMS dominates inference)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs every parameter at INFO
    try:
        peer.init_weights()
    finally:
        logger.setLevel(level)
    randomize_norms_(peer)
    ours = MODELS.build(ConfigDict(ours_cfg))
    ours.load_state_dict(peer.state_dict())
    return ours.eval(), peer.eval()


def _samples(case: ModelCase, batch: int, image: Tuple[int, int],
             num_classes: int) -> Tuple[Tensor, list]:
    """Normalised inputs and data samples with random ground truth."""
    gen = torch.Generator().manual_seed(1)
    h, w = image
    inputs = torch.randn(batch, 3, h, w, generator=gen)
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
                scale_factor=(1.0, 1.0), padding_size=[0, 0, 0, 0], flip=False)
    samples = []
    if case.package == 'mmseg':
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample

        for _ in range(batch):
            sample = SegDataSample(metainfo=meta)
            sample.gt_sem_seg = PixelData(
                data=torch.randint(0, num_classes, (1, h, w), generator=gen))
            samples.append(sample)
    else:
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData

        for _ in range(batch):
            sample = DetDataSample(metainfo=meta)
            xy = torch.rand(4, 2, generator=gen) * torch.tensor([w * 0.6, h * 0.6])
            wh = (torch.rand(4, 2, generator=gen) * 0.3 + 0.1) * torch.tensor([w, h])
            sample.gt_instances = InstanceData(
                bboxes=torch.cat([xy, xy + wh], 1),
                labels=torch.randint(0, num_classes, (4,), generator=gen))
            samples.append(sample)
    return inputs, samples


@dataclass
class _ModuleClock:
    """Forward time of one module per step, and when the gradients reached its outputs."""

    forward_s: float = 0.0
    grads_at: List[float] = field(default_factory=list)
    _start: float = 0.0

    def attach(self, module: nn.Module) -> list:
        """Hook ``module``; returns the hook handles."""
        def pre(module: nn.Module, args: Any) -> None:
            self._start = time.perf_counter()

        def post(module: nn.Module, args: Any, out: Any) -> None:
            self.forward_s += time.perf_counter() - self._start
            for t in (out if isinstance(out, (list, tuple)) else [out]):
                if isinstance(t, Tensor) and t.requires_grad:
                    t.register_hook(self._on_grad)

        return [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]

    def _on_grad(self, grad: Tensor) -> None:
        self.grads_at.append(time.perf_counter())

    def reset(self) -> None:
        self.forward_s, self.grads_at = 0.0, []


@dataclass
class _Split:
    """Backbone and neck time per step, from hooks.

    Backbone: its forward, plus its backward from the moment the last gradient reached its
    outputs until the backward ended. Neck: its forward, plus its backward from the moment
    the last gradient reached its outputs until the last one reached its inputs (the
    backbone's outputs).
    """

    backbone_s: List[float] = field(default_factory=list)
    neck_s: List[float] = field(default_factory=list)
    total_s: List[float] = field(default_factory=list)
    backbone: _ModuleClock = field(default_factory=_ModuleClock)
    neck: Optional[_ModuleClock] = None

    def attach(self, model: nn.Module) -> list:
        """Hook ``model.backbone`` (and ``model.neck`` where there is one)."""
        handles = self.backbone.attach(model.backbone)
        if getattr(model, 'neck', None) is not None:
            self.neck = _ModuleClock()
            handles += self.neck.attach(model.neck)
        return handles

    def begin(self) -> float:
        self.backbone.reset()
        if self.neck is not None:
            self.neck.reset()
        return time.perf_counter()

    def end(self, start: float, backward_end: Optional[float] = None) -> None:
        backbone, neck = self.backbone, self.neck
        backbone_s = backbone.forward_s
        if backward_end is not None and backbone.grads_at:
            backbone_s += backward_end - max(backbone.grads_at)
        self.backbone_s.append(backbone_s)
        if neck is not None:
            neck_s = neck.forward_s
            if backward_end is not None and neck.grads_at and backbone.grads_at:
                neck_s += max(backbone.grads_at) - max(neck.grads_at)
            self.neck_s.append(neck_s)
        self.total_s.append(time.perf_counter() - start)


def _train_fn(model: nn.Module, inputs: Tensor, samples: list, split: _Split
              ) -> Callable[[], object]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-5, momentum=0.9)

    def run() -> object:
        start = split.begin()
        loss, _ = model.parse_losses(model.loss(inputs, samples))
        loss.backward()
        backward_end = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        split.end(start, backward_end)
        return loss
    return run


def _infer_fn(model: nn.Module, inputs: Tensor, samples: list, split: _Split
              ) -> Callable[[], object]:
    def run() -> object:
        start = split.begin()
        with torch.inference_mode():
            out = model.predict(inputs, samples)
        split.end(start)
        return out
    return run


def _num_classes(model: nn.Module) -> int:
    head = getattr(model, 'decode_head', None) or model.bbox_head
    return int(head.num_classes)


@suite('models')
def models_suite(repeats: int = 5, quick: bool = False, only: Optional[str] = None,
                 batches: Tuple[int, ...] = (1, 2)) -> List[Row]:
    """Whole stock models vs the same with densekit's neck/head (``only``: case filter, e.g.
    ``DeepLabV3``, ``Semantic FPN``, ``RetinaNet``, ``b2``, ``inference``)."""
    rows: List[Row] = []
    for case in MODEL_CASES:
        image = case.quick_image if quick else case.image
        size = f'{image[0]}x{image[1]}'
        names = {(b, mode): f'{case.name} {size} b{b} {mode}'
                 for b in batches for mode in ('inference', 'train step')}
        wanted = [k for k, n in names.items() if only is None or only.lower() in n.lower()]
        if not wanted:
            continue
        ours, peer = build_pair(case, quick)
        device = resolve_device(peer)
        for batch, mode in wanted:
            inputs, samples = _samples(case, batch, image, _num_classes(peer))
            train = mode != 'inference'
            splits = (_Split(), _Split())
            fns = []
            handles = []
            for model, split in zip((ours, peer), splits):
                model.train(train)  # mmdet's ResNet keeps its frozen stages / norm_eval
                handles += split.attach(model)
                make = _train_fn if train else _infer_fn
                fns.append(make(model, inputs, samples, split))
            try:
                result = measure_pair(fns[0], fns[1], device=device, repeats=repeats,
                                      warmup=1)
            except Exception as err:  # noqa: BLE001 (reported as the row's result)
                # e.g. DeepLabV3 training at batch 1: BatchNorm after the image pool sees one
                # value per channel (the stock config trains 2 images per GPU)
                message = ' '.join(str(err).split())[:150]
                rows.append(Row(names[(batch, mode)], float('nan'), device=str(device),
                                extra={'status': f'FAILED: {type(err).__name__}: {message}'}))
                print(f'{names[(batch, mode)]}: {rows[-1].extra["status"]}', flush=True)
                for handle in handles:
                    handle.remove()
                continue
            # the timed runs are entries 1..repeats (after the warm-up)
            def timed(values: List[float]) -> float:
                return statistics.median(values[1:1 + repeats])

            backbone = [timed(s.backbone_s) for s in splits]
            total = [timed(s.total_s) for s in splits]
            rest = [t - b for b, t in zip(backbone, total)]
            extra = {
                'status': 'ok',
                'backbone share dk/peer': f'{backbone[0] / total[0]:.0%}/'
                                          f'{backbone[1] / total[1]:.0%}',
                # neck, heads, loss and SGD step (train) or post-processing (inference)
                'rest s dk/peer': f'{rest[0]:.3f}/{rest[1]:.3f}',
                'rest ratio': f'{rest[0] / rest[1]:.2f}' if rest[1] > 0 else '-',
                'neck s dk/peer': '-',
                'neck ratio': '-',
            }
            if all(s.neck_s for s in splits):
                neck = [timed(s.neck_s) for s in splits]
                extra['neck s dk/peer'] = f'{neck[0]:.3f}/{neck[1]:.3f}'
                extra['neck ratio'] = f'{neck[0] / neck[1]:.2f}' if neck[1] > 0 else '-'
            rows.append(result.row(names[(batch, mode)], extra=extra))
            print(f'{names[(batch, mode)]}: ratio {rows[-1].ratio:.2f} '
                  f'(rest {extra["rest ratio"]})', flush=True)
            for handle in handles:
                handle.remove()
    return rows
