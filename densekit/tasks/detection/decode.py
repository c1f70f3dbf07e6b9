"""Box decoding and NMS of one-stage detectors (anchor heads and FCOS) in plain numpy.

``densekit export`` cuts an mmdet one-stage detector at the head's raw per-level outputs
(``cls_0 .. cls_{L-1}``: ``(N, A*C, H_l, W_l)``, ``box_0 .. box_{L-1}``: ``(N, A*4, H_l, W_l)``,
and ``ctr_0 .. ctr_{L-1}``: ``(N, A, H_l, W_l)`` for heads with a centerness branch).
:class:`AnchorDecoder` (an anchor head with ``DeltaXYWHBBoxCoder``: RetinaNet, ATSS) and
:class:`PointDecoder` (FCOS: ``MlvlPointGenerator`` points, ``DistancePointBBoxCoder``) turn
those maps into boxes the way mmdet 3.x's ``BaseDenseHead.predict_by_feat`` does;
:func:`decoder_from_config` picks the one of a config:

1. priors per level: the ``AnchorGenerator``'s base anchors shifted over the ``(H_l, W_l)``
   grid, flattened in ``(H, W, A)`` order, or one point ``((x + 0.5) * s, (y + 0.5) * s)``
   per location;
2. sigmoid scores (softmax without the background column for a softmax head), pairs
   ``(prior, class)`` above ``score_thr``, the ``nms_pre`` best of them per level (ranked by
   the class score alone), and the sigmoid centerness of the chosen priors;
3. delta decoding (``target_means`` / ``target_stds``, ``wh_ratio_clip``, optional centre
   clamp) or distance decoding (``x - left, y - top, x + right, y + bottom``; FCOS's forward
   has already applied its ``Scale``, the ReLU and the stride of ``norm_on_bbox`` to the
   exported maps), clipped to ``img_shape``; the levels concatenated;
4. boxes divided by ``scale_factor``, scores multiplied by the centerness (no square root),
   boxes not wider and taller than ``min_bbox_size`` dropped, class-aware NMS (mmcv's
   ``batched_nms``: every class shifted by ``label * (max coordinate + 1)``, IoU
   ``inter / (area_i + area_j - inter)`` with areas ``(x2 - x1 + offset) * (y2 - y1 + offset)``,
   a box suppressed when its IoU with a kept higher-scoring box is ``> iou_threshold``), the
   first ``max_per_img``.

The arithmetic is float32 in mmdet's order of operations, so the boxes agree with mmdet's to
float32 rounding. The numbers are read once from a built head (``from_head``) or from its
config dict (``from_config``); decoding then needs numpy only.

Ties: mmdet sorts scores with ``torch.sort``, whose order among equal scores is unspecified.
Here every sort is stable: among equal scores the lower flat index comes first (the
``(prior, class)`` pair earlier in ``(level, H, W, A, C)`` order; in NMS the box earlier in
its input). Results are identical to mmdet's whenever the scores that meet are distinct.

Two mmdet quirks are kept on purpose: ``nms_pre <= 0`` slices ``[:nms_pre]`` as mmdet does
(``nms_pre=-1`` drops the single lowest-scoring pair of each level), and ``max_per_img`` slices
the same way.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ['AnchorDecoder', 'PointDecoder', 'decoder_from_config', 'nms', 'batched_nms',
           'grid_anchors', 'grid_points', 'base_anchors', 'delta_to_boxes', 'distance_to_boxes']

F32 = np.float32
DEFAULT_WH_RATIO_CLIP = 16 / 1000  # DeltaXYWHBBoxCoder.decode's default, used by the heads
DEFAULT_SPLIT_THR = 10000  # mmcv batched_nms: per-class NMS from this many boxes on
# anchor heads decoded with the sigmoid of their centerness branch multiplied into the scores
CENTERNESS_ANCHOR_HEADS = ('ATSSHead',)
# anchor heads whose test-time decoding is not BaseDenseHead's (score voting, boxes decoded in
# forward, an IoU branch)
REFUSED_ANCHOR_HEADS = ('PAAHead', 'DDODHead', 'TOODHead')
# anchor-free heads decoded from points and distances, with centerness
POINT_HEADS = ('FCOSHead',)
DEFAULT_POINT_STRIDES = (4, 8, 16, 32, 64)  # AnchorFreeHead's default strides
DEFAULT_POINT_OFFSET = 0.5  # MlvlPointGenerator's default offset, as AnchorFreeHead builds it


def _type_name(cfg_type: Any) -> str:
    """``'mmdet.AnchorGenerator'`` / a class -> ``'AnchorGenerator'``."""
    name = cfg_type if isinstance(cfg_type, str) else getattr(cfg_type, '__name__', str(cfg_type))
    return name.rsplit('.', 1)[-1]


def _pair(value: Union[int, float, Sequence[float]], name: str) -> Tuple[float, float]:
    if isinstance(value, numbers.Real):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 \
            and all(isinstance(v, numbers.Real) for v in value):
        return (value[0], value[1])
    raise TypeError(f'{name} must be a number or a pair of numbers, got {value!r}')


def base_anchors(base_size: float, scales: Sequence[float], ratios: Sequence[float],
                 scale_major: bool = True, center: Optional[Tuple[float, float]] = None,
                 center_offset: float = 0.0) -> np.ndarray:
    """The ``(A, 4)`` float32 anchors of one grid cell, as ``AnchorGenerator`` builds them.

    ``A = len(ratios) * len(scales)``; ratio-major order (the ratio changes slowest) when
    ``scale_major`` is True. Ratios are ``h / w``.
    """
    scales_ = np.asarray(scales, dtype=np.float64).astype(F32)
    ratios_ = np.asarray(ratios, dtype=np.float64).astype(F32)
    size = F32(base_size)
    if center is None:
        x_center, y_center = F32(center_offset * base_size), F32(center_offset * base_size)
    else:
        x_center, y_center = F32(center[0]), F32(center[1])
    h_ratios = np.sqrt(ratios_)
    w_ratios = F32(1) / h_ratios
    if scale_major:
        ws = (size * w_ratios[:, None] * scales_[None, :]).reshape(-1)
        hs = (size * h_ratios[:, None] * scales_[None, :]).reshape(-1)
    else:
        ws = (size * scales_[:, None] * w_ratios[None, :]).reshape(-1)
        hs = (size * scales_[:, None] * h_ratios[None, :]).reshape(-1)
    half = F32(0.5)
    return np.stack([x_center - half * ws, y_center - half * hs,
                     x_center + half * ws, y_center + half * hs], axis=-1).astype(F32)


def grid_anchors(cell_anchors: np.ndarray, featmap_size: Tuple[int, int],
                 stride: Tuple[float, float]) -> np.ndarray:
    """All anchors of a level: ``(H * W * A, 4)`` float32, in ``(H, W, A)`` order.

    ``stride`` is ``(stride_w, stride_h)``, as mmdet stores it.
    """
    height, width = featmap_size
    shift_x = np.arange(width, dtype=F32) * F32(stride[0])
    shift_y = np.arange(height, dtype=F32) * F32(stride[1])
    xx = np.tile(shift_x, height)
    yy = np.repeat(shift_y, width)
    shifts = np.stack([xx, yy, xx, yy], axis=-1)
    return (cell_anchors[None, :, :] + shifts[:, None, :]).reshape(-1, 4)


def delta_to_boxes(anchors: np.ndarray, deltas: np.ndarray,
                   means: Sequence[float] = (0., 0., 0., 0.),
                   stds: Sequence[float] = (1., 1., 1., 1.),
                   max_shape: Optional[Sequence[int]] = None,
                   wh_ratio_clip: float = DEFAULT_WH_RATIO_CLIP, clip_border: bool = True,
                   add_ctr_clamp: bool = False, ctr_clamp: float = 32) -> np.ndarray:
    """mmdet's ``delta2bbox`` for ``(K, 4)`` anchors and deltas, in float32.

    ``max_shape`` is ``(h, w, ...)``: x is clipped to ``[0, w]``, y to ``[0, h]``.
    """
    anchors = np.asarray(anchors, dtype=F32).reshape(-1, 4)
    deltas = np.asarray(deltas, dtype=F32).reshape(-1, 4)
    if anchors.shape != deltas.shape:
        raise ValueError(f'anchors {anchors.shape} and deltas {deltas.shape} differ')
    if deltas.shape[0] == 0:
        return deltas.copy()
    denorm = deltas * np.asarray(stds, dtype=F32)[None] + np.asarray(means, dtype=F32)[None]
    dxy, dwh = denorm[:, :2], denorm[:, 2:]
    pxy = (anchors[:, :2] + anchors[:, 2:]) * F32(0.5)
    pwh = anchors[:, 2:] - anchors[:, :2]
    dxy_wh = pwh * dxy
    max_ratio = F32(abs(math.log(wh_ratio_clip)))
    if add_ctr_clamp:
        dxy_wh = np.clip(dxy_wh, F32(-ctr_clamp), F32(ctr_clamp))
        dwh = np.minimum(dwh, max_ratio)
    else:
        dwh = np.minimum(np.maximum(dwh, -max_ratio), max_ratio)
    gxy = pxy + dxy_wh
    gwh = pwh * np.exp(dwh)
    boxes = np.concatenate([gxy - gwh * F32(0.5), gxy + gwh * F32(0.5)], axis=-1)
    if clip_border and max_shape is not None:
        boxes[:, 0::2] = np.minimum(np.maximum(boxes[:, 0::2], F32(0)), F32(max_shape[1]))
        boxes[:, 1::2] = np.minimum(np.maximum(boxes[:, 1::2], F32(0)), F32(max_shape[0]))
    return boxes


def grid_points(featmap_size: Tuple[int, int], stride: Tuple[float, float],
                offset: float = DEFAULT_POINT_OFFSET) -> np.ndarray:
    """All points of a level as ``MlvlPointGenerator`` lays them: ``(H * W, 2)`` float32
    ``(x, y)`` in row-major order, ``x = (col + offset) * stride_w``.

    ``stride`` is ``(stride_w, stride_h)``.
    """
    height, width = featmap_size
    xs = (np.arange(width, dtype=F32) + F32(offset)) * F32(stride[0])
    ys = (np.arange(height, dtype=F32) + F32(offset)) * F32(stride[1])
    return np.stack([np.tile(xs, height), np.repeat(ys, width)], axis=-1)


def distance_to_boxes(points: np.ndarray, distances: np.ndarray,
                      max_shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """mmdet's ``distance2bbox`` for ``(K, 2)`` points and ``(K, 4)`` distances
    ``(left, top, right, bottom)``, in float32.

    ``max_shape`` is ``(h, w, ...)``: x is clipped to ``[0, w]``, y to ``[0, h]``.
    """
    points = np.asarray(points, dtype=F32).reshape(-1, 2)
    distances = np.asarray(distances, dtype=F32).reshape(-1, 4)
    if points.shape[0] != distances.shape[0]:
        raise ValueError(f'points {points.shape} and distances {distances.shape} differ in '
                         'length')
    boxes = np.concatenate([points - distances[:, :2], points + distances[:, 2:]], axis=-1)
    if max_shape is not None:
        boxes[:, 0::2] = np.minimum(np.maximum(boxes[:, 0::2], F32(0)), F32(max_shape[1]))
        boxes[:, 1::2] = np.minimum(np.maximum(boxes[:, 1::2], F32(0)), F32(max_shape[0]))
    return boxes


def _descending(scores: np.ndarray) -> np.ndarray:
    """Indices sorting ``scores`` high to low; ties keep their input order (stable)."""
    return np.argsort(-scores, kind='stable')


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, offset: int = 0,
        score_threshold: float = 0.0, max_num: int = -1) -> np.ndarray:
    """Greedy NMS as mmcv's ``nms`` (CPU kernel): indices of the kept boxes, best first.

    Boxes are ``(x1, y1, x2, y2)``; ``offset`` 1 counts pixels inclusively (legacy). Boxes
    with a score not above ``score_threshold`` are dropped first when it is positive; at
    most ``max_num`` are returned when it is positive.
    """
    boxes = np.asarray(boxes, dtype=F32)
    scores = np.asarray(scores, dtype=F32)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f'boxes must be (K, 4), got {boxes.shape}')
    if scores.shape != (boxes.shape[0],):
        raise ValueError(f'scores must be ({boxes.shape[0]},), got {scores.shape}')
    if offset not in (0, 1):
        raise ValueError(f'offset must be 0 or 1, got {offset!r}')
    valid = None
    if score_threshold > 0:
        valid = np.flatnonzero(scores > F32(score_threshold))
        boxes, scores = boxes[valid], scores[valid]
    order = _descending(scores)
    x1, y1, x2, y2 = (boxes[order, k] for k in range(4))
    off = F32(offset)
    areas = (x2 - x1 + off) * (y2 - y1 + off)
    threshold = F32(iou_threshold)
    alive = np.ones(order.size, dtype=bool)
    for i in range(order.size):
        if not alive[i]:
            continue
        rest = np.flatnonzero(alive[i + 1:]) + i + 1
        if rest.size == 0:
            break
        w = np.maximum(F32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + off)
        h = np.maximum(F32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + off)
        inter = w * h
        with np.errstate(divide='ignore', invalid='ignore'):
            iou = inter / (areas[i] + areas[rest] - inter)
        alive[rest[iou > threshold]] = False
    keep = order[alive]
    if max_num > 0:
        keep = keep[:max_num]
    return keep if valid is None else valid[keep]


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                nms_cfg: Optional[Mapping[str, Any]],
                class_agnostic: bool = False) -> np.ndarray:
    """mmcv's ``batched_nms``: NMS within each label; indices of the kept boxes, best first.

    ``nms_cfg`` holds ``iou_threshold`` (or the old ``iou_thr``) and optionally ``type``
    (``'nms'`` only), ``class_agnostic``, ``offset``, ``score_threshold``, ``max_num``,
    ``split_thr``. ``None`` only sorts by score.
    """
    boxes = np.asarray(boxes, dtype=F32)
    scores = np.asarray(scores, dtype=F32)
    labels = np.asarray(labels)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f'boxes must be (K, 4), got {boxes.shape}')
    if scores.shape != (boxes.shape[0],) or labels.shape != (boxes.shape[0],):
        raise ValueError(f'scores {scores.shape} and labels {labels.shape} must be '
                         f'({boxes.shape[0]},)')
    if nms_cfg is None:
        return _descending(scores)
    cfg = dict(nms_cfg)
    class_agnostic = bool(cfg.pop('class_agnostic', class_agnostic))
    nms_type = _type_name(cfg.pop('type', 'nms'))
    if nms_type != 'nms':
        raise ValueError(f"nms_cfg type must be 'nms' (hard NMS), got {nms_type!r}")
    if 'iou_thr' in cfg and 'iou_threshold' not in cfg:
        cfg['iou_threshold'] = cfg.pop('iou_thr')
    if 'iou_threshold' not in cfg:
        raise ValueError(f'nms_cfg needs iou_threshold, got {dict(nms_cfg)!r}')
    split_thr = cfg.pop('split_thr', DEFAULT_SPLIT_THR)
    max_num = cfg.pop('max_num', -1)
    unknown = set(cfg) - {'iou_threshold', 'offset', 'score_threshold'}
    if unknown:
        raise ValueError(f'nms_cfg has unknown keys {sorted(unknown)}')
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if class_agnostic:
        boxes_for_nms = boxes
    else:
        offsets = labels.astype(F32) * (boxes.max() + F32(1))
        boxes_for_nms = boxes + offsets[:, None]
    if boxes_for_nms.shape[0] < split_thr:
        return nms(boxes_for_nms, scores, max_num=max_num, **cfg).astype(np.int64)
    kept = np.zeros(boxes.shape[0], dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        kept[members[nms(boxes_for_nms[members], scores[members], **cfg)]] = True
    keep = np.flatnonzero(kept)
    keep = keep[_descending(scores[keep])]
    if max_num > 0:
        keep = keep[:max_num]
    return keep.astype(np.int64)


def _forward_groups(bbox_head: Any, num_levels: int) -> int:
    """How many output groups (scores, boxes, centerness, ...) the head's forward gives, from
    one probe forward in eval mode on tiny zero maps (the head's mode is restored)."""
    import torch

    feats = tuple(torch.zeros(1, bbox_head.in_channels, 2, 2) for _ in range(num_levels))
    training = bbox_head.training
    try:
        bbox_head.eval()
        with torch.no_grad():
            groups = bbox_head.forward(feats)
    finally:
        bbox_head.train(training)
    return len(groups)


def _centerness_from_head(bbox_head: Any, num_levels: int, centerness_head: type) -> bool:
    """Whether the head's forward gives a centerness group: True for ``centerness_head``'s own
    ``forward_single`` (scores, boxes, centerness); False for a head with scores and boxes
    only; a TypeError for any other output."""
    groups = _forward_groups(bbox_head, num_levels)
    name = type(bbox_head).__name__
    if groups == 2:
        return False
    if groups == 3 and isinstance(bbox_head, centerness_head) and \
            type(bbox_head).forward_single is centerness_head.forward_single:
        return True
    raise TypeError(f'{name}.forward gives {groups} output groups; the decoders read scores, '
                    f'boxes and the centerness of {centerness_head.__name__} only')


def _check_base_predict(bbox_head: Any, decoder: str) -> None:
    from mmdet.models.dense_heads.base_dense_head import BaseDenseHead

    name = type(bbox_head).__name__
    if not isinstance(bbox_head, BaseDenseHead):
        raise TypeError(f'bbox_head must be an mmdet dense head, got {name}')
    for method in ('predict_by_feat', '_predict_by_feat_single', '_bbox_post_process'):
        if getattr(type(bbox_head), method) is not getattr(BaseDenseHead, method):
            raise TypeError(f'{name} overrides {method}; {decoder} reproduces '
                            "BaseDenseHead's only")
    if getattr(bbox_head.loss_cls, 'custom_cls_channels', False):
        raise TypeError(f'{name}: custom classification channels are not supported')


def _use_sigmoid(bbox_head: Mapping[str, Any]) -> bool:
    """``use_sigmoid_cls`` as mmdet reads it (``loss_cls.get('use_sigmoid', False)``); the
    heads' default ``loss_cls`` (no key in the config) is a sigmoid loss."""
    loss_cls = bbox_head.get('loss_cls')
    return True if loss_cls is None else bool(loss_cls.get('use_sigmoid', False))


def _as_level(array: Any, name: str) -> np.ndarray:
    """One level's map as ``(C, H, W)``: accepts ``(C, H, W)`` or ``(1, C, H, W)``."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f'{name} must be a numpy array, got {type(array).__name__} '
                        '(convert tensors with .numpy())')
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f'{name} must be floating point, got dtype {array.dtype}')
    if array.ndim == 4:
        if array.shape[0] != 1:
            raise ValueError(f'{name} has batch {array.shape[0]}; decode takes one image, '
                             'use decode_batch for more')
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f'{name} must be (1, channels, H, W) or (channels, H, W), got '
                         f'shape {array.shape}')
    return array.astype(F32, copy=False)


def _image_shape(img_shape: Any) -> Tuple[int, int]:
    if not isinstance(img_shape, (tuple, list)) or len(img_shape) not in (2, 3) \
            or not all(isinstance(v, numbers.Integral) and v > 0 for v in img_shape[:2]):
        raise ValueError(f'img_shape must be (height, width) of positive integers, got '
                         f'{img_shape!r}')
    return int(img_shape[0]), int(img_shape[1])


def _scale_pair(scale_factor: Any) -> Optional[Tuple[float, float]]:
    if scale_factor is None:
        return None
    pair = _pair(scale_factor, 'scale_factor')
    if not all(v > 0 and math.isfinite(v) for v in pair):
        raise ValueError(f'scale_factor must be positive, got {scale_factor!r}')
    return float(pair[0]), float(pair[1])


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    """float32 sigmoid, rounded once from float64."""
    return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(F32)


def _level_list(value: Any, name: str, num_levels: int) -> None:
    if isinstance(value, np.ndarray) or not isinstance(value, Sequence):
        raise TypeError(f'{name} must be a list with one array per level, got '
                        f'{type(value).__name__}')
    if len(value) != num_levels:
        raise ValueError(f'{name} has {len(value)} levels, the head has {num_levels}')


class _DenseDecoding:
    """The steps of mmdet's ``BaseDenseHead.predict_by_feat`` shared by the decoders; a
    decoder gives :meth:`priors`, :meth:`priors_per_location` and :meth:`_boxes`."""

    num_classes: int
    use_sigmoid: bool
    with_centerness: bool
    score_thr: float
    nms_pre: int
    min_bbox_size: float
    nms_cfg: Dict[str, Any]
    max_per_img: int

    @property
    def num_levels(self) -> int:
        """Pyramid levels the decoder expects."""
        raise NotImplementedError

    @property
    def cls_out_channels(self) -> int:
        """Score channels per prior (a background column for softmax heads)."""
        return self.num_classes if self.use_sigmoid else self.num_classes + 1

    def priors_per_location(self, level: int) -> int:
        """Priors (anchors, or one point) at each location of ``level``."""
        raise NotImplementedError

    def priors(self, featmap_sizes: Sequence[Tuple[int, int]]) -> List[np.ndarray]:
        """Per level, the priors of maps of ``featmap_sizes``."""
        raise NotImplementedError

    def _boxes(self, priors: np.ndarray, preds: np.ndarray,
               img_shape: Tuple[int, int]) -> np.ndarray:
        raise NotImplementedError

    def _check_settings(self) -> None:
        if not isinstance(self.num_classes, numbers.Integral) or self.num_classes < 1:
            raise ValueError(f'num_classes must be a positive integer, got {self.num_classes!r}')
        if not isinstance(self.nms_pre, numbers.Integral):
            raise TypeError(f'nms_pre must be an integer, got {self.nms_pre!r}')
        if not isinstance(self.max_per_img, numbers.Integral):
            raise TypeError(f'max_per_img must be an integer, got {self.max_per_img!r}')
        if self.nms_cfg is None or not isinstance(self.nms_cfg, Mapping):
            raise TypeError(f'nms_cfg must be a dict such as {{"iou_threshold": 0.5}}, got '
                            f'{self.nms_cfg!r}')
        self.nms_cfg = dict(self.nms_cfg)
        batched_nms(np.zeros((0, 4), F32), np.zeros(0, F32), np.zeros(0, np.int64),
                    self.nms_cfg)  # validates the keys now rather than at the first image

    @staticmethod
    def _test_settings(test_cfg: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
        if test_cfg is None or 'nms' not in test_cfg:
            raise ValueError(f'test_cfg must give nms (and score_thr, nms_pre, max_per_img), '
                             f'got {test_cfg!r}')
        return dict(score_thr=float(test_cfg.get('score_thr', 0)),
                    nms_pre=int(test_cfg.get('nms_pre', -1)),
                    min_bbox_size=test_cfg.get('min_bbox_size', -1),
                    nms_cfg=dict(test_cfg['nms']),
                    max_per_img=int(test_cfg.get('max_per_img', 100)))

    def _scores(self, logits: np.ndarray) -> np.ndarray:
        if self.use_sigmoid:
            return _sigmoid(logits)
        wide = logits.astype(np.float64)
        wide = np.exp(wide - wide.max(axis=1, keepdims=True))
        return (wide / wide.sum(axis=1, keepdims=True))[:, :-1].astype(F32)

    def decode(self, cls_outputs: Sequence[np.ndarray], box_outputs: Sequence[np.ndarray],
               img_shape: Sequence[int],
               scale_factor: Optional[Union[float, Tuple[float, float]]] = None,
               centerness: Optional[Sequence[np.ndarray]] = None) -> Dict[str, np.ndarray]:
        """Detections of one image.

        Args:
            cls_outputs: Per level, ``(1, P*C, H_l, W_l)`` or ``(P*C, H_l, W_l)`` score logits
                (``P`` priors per location: the anchors of a cell, or 1 point).
            box_outputs: Per level, ``(1, P*4, H_l, W_l)`` or ``(P*4, H_l, W_l)`` box
                regressions (deltas, or distances as the head's forward scales them).
            img_shape: ``(height, width)`` of the image the network saw, before padding
                (mmdet's ``img_meta['img_shape']``); boxes are clipped to it.
            scale_factor: ``(w_scale, h_scale)`` (or one number) from the original image to
                the network input (``img_meta['scale_factor']``); boxes are divided by it.
                None keeps them in network-input pixels.
            centerness: Per level, ``(1, P, H_l, W_l)`` or ``(P, H_l, W_l)`` centerness
                logits; required when :attr:`with_centerness`, refused otherwise.

        Returns:
            ``boxes`` ``(K, 4)`` float32 ``(x1, y1, x2, y2)``, ``scores`` ``(K,)`` float32,
            ``labels`` ``(K,)`` int64, best first.
        """
        height, width = _image_shape(img_shape)
        scale = _scale_pair(scale_factor)
        _level_list(cls_outputs, 'cls_outputs', self.num_levels)
        _level_list(box_outputs, 'box_outputs', self.num_levels)
        if self.with_centerness:
            if centerness is None:
                raise ValueError('centerness is required: the head multiplies its scores by '
                                 'the sigmoid of its centerness branch')
            _level_list(centerness, 'centerness', self.num_levels)
        elif centerness is not None:
            raise ValueError('centerness given to a decoder of a head without a centerness '
                             'branch (with_centerness=False)')
        cls_maps = [_as_level(a, f'cls_outputs[{i}]') for i, a in enumerate(cls_outputs)]
        box_maps = [_as_level(a, f'box_outputs[{i}]') for i, a in enumerate(box_outputs)]
        ctr_maps = [None] * self.num_levels if centerness is None else \
            [_as_level(a, f'centerness[{i}]') for i, a in enumerate(centerness)]
        sizes = []
        for i, (cls_map, box_map, ctr_map) in enumerate(zip(cls_maps, box_maps, ctr_maps)):
            per = self.priors_per_location(i)
            if cls_map.shape[0] != per * self.cls_out_channels:
                raise ValueError(f'cls_outputs[{i}] has {cls_map.shape[0]} channels, expected '
                                 f'{per} priors x {self.cls_out_channels} classes')
            if box_map.shape[0] != per * 4:
                raise ValueError(f'box_outputs[{i}] has {box_map.shape[0]} channels, expected '
                                 f'{per} priors x 4')
            if cls_map.shape[1:] != box_map.shape[1:]:
                raise ValueError(f'level {i}: cls map {cls_map.shape[1:]} and box map '
                                 f'{box_map.shape[1:]} differ in size')
            if ctr_map is not None and ctr_map.shape != (per,) + cls_map.shape[1:]:
                raise ValueError(f'centerness[{i}] has shape {ctr_map.shape}, expected '
                                 f'{(per,) + cls_map.shape[1:]}')
            sizes.append(tuple(cls_map.shape[1:]))
        level_priors = self.priors(sizes)

        picked_preds, picked_priors, picked_scores, picked_labels = [], [], [], []
        picked_factors = []
        threshold = F32(self.score_thr)
        for cls_map, box_map, ctr_map, priors in zip(cls_maps, box_maps, ctr_maps,
                                                     level_priors):
            scores = self._scores(cls_map.transpose(1, 2, 0).reshape(-1, self.cls_out_channels))
            preds = box_map.transpose(1, 2, 0).reshape(-1, 4)
            flat = np.flatnonzero(scores.reshape(-1) > threshold)
            order = _descending(scores.reshape(-1)[flat])
            # mmdet slices [:min(nms_pre, n)] (a negative nms_pre slices from the end); the
            # selection ranks the class scores alone, before the centerness factor
            chosen = flat[order][:min(self.nms_pre, flat.size)]
            prior_idx, labels = np.divmod(chosen, scores.shape[1])
            picked_scores.append(scores.reshape(-1)[chosen])
            picked_labels.append(labels.astype(np.int64))
            picked_preds.append(preds[prior_idx])
            picked_priors.append(priors[prior_idx])
            if ctr_map is not None:
                picked_factors.append(_sigmoid(ctr_map.transpose(1, 2, 0).reshape(-1))[prior_idx])
        boxes = self._boxes(np.concatenate(picked_priors), np.concatenate(picked_preds),
                            (height, width))
        scores = np.concatenate(picked_scores)
        labels = np.concatenate(picked_labels)
        if scale is not None:
            inverse = np.asarray([1 / scale[0], 1 / scale[1]] * 2, dtype=np.float64).astype(F32)
            boxes = boxes * inverse[None]
        if picked_factors:
            scores = scores * np.concatenate(picked_factors)
        if self.min_bbox_size >= 0:
            size = F32(self.min_bbox_size)
            valid = ((boxes[:, 2] - boxes[:, 0]) > size) & ((boxes[:, 3] - boxes[:, 1]) > size)
            boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
        if boxes.shape[0] > 0:
            keep = batched_nms(boxes, scores, labels, self.nms_cfg)[:self.max_per_img]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        return dict(boxes=np.ascontiguousarray(boxes, dtype=F32).reshape(-1, 4),
                    scores=np.ascontiguousarray(scores, dtype=F32),
                    labels=np.ascontiguousarray(labels, dtype=np.int64))

    def decode_batch(self, cls_outputs: Sequence[np.ndarray], box_outputs: Sequence[np.ndarray],
                     img_shapes: Sequence[Sequence[int]],
                     scale_factors: Optional[Sequence[Any]] = None,
                     centerness: Optional[Sequence[np.ndarray]] = None
                     ) -> List[Dict[str, np.ndarray]]:
        """:meth:`decode` for each image of ``(N, ...)`` maps; one shape (and scale) per image."""
        if isinstance(cls_outputs, np.ndarray) or not isinstance(cls_outputs, Sequence) \
                or len(cls_outputs) == 0:
            raise TypeError('cls_outputs must be a non-empty list with one array per level')
        batch = np.asarray(cls_outputs[0]).shape[0]
        if len(img_shapes) != batch:
            raise ValueError(f'{len(img_shapes)} img_shapes for a batch of {batch}')
        if scale_factors is not None and len(scale_factors) != batch:
            raise ValueError(f'{len(scale_factors)} scale_factors for a batch of {batch}')
        groups = [('cls_outputs', cls_outputs), ('box_outputs', box_outputs)]
        if centerness is not None:
            groups.append(('centerness', centerness))
        for name, maps in groups:
            _level_list(maps, name, self.num_levels)
            for i, level in enumerate(maps):
                if not isinstance(level, np.ndarray) or level.ndim != 4 \
                        or level.shape[0] != batch:
                    raise ValueError(f'{name}[{i}] must be a (N={batch}, channels, H, W) '
                                     f'array, got {getattr(level, "shape", type(level))}')
        return [self.decode([level[n] for level in cls_outputs],
                            [level[n] for level in box_outputs], img_shapes[n],
                            None if scale_factors is None else scale_factors[n],
                            None if centerness is None else [level[n] for level in centerness])
                for n in range(batch)]


@dataclass
class AnchorDecoder(_DenseDecoding):
    """Raw anchor-head maps -> ``boxes``, ``scores``, ``labels`` (see the module docstring).

    Attributes:
        num_classes: Foreground classes.
        cell_anchors: Per level, the ``(A, 4)`` float32 anchors of one cell.
        strides: Per level, ``(stride_w, stride_h)``.
        use_sigmoid: Sigmoid scores (True) or softmax with a background column (False).
        means, stds: ``DeltaXYWHBBoxCoder``'s ``target_means`` / ``target_stds``.
        wh_ratio_clip: Bound of the log size deltas, ``|log(wh_ratio_clip)|``.
        clip_border: Clip decoded boxes to the image.
        add_ctr_clamp, ctr_clamp: Clamp centre shifts to ``ctr_clamp`` pixels (YOLOF).
        with_centerness: The scores are multiplied by the sigmoid of a centerness branch
            (ATSS); :meth:`decode` then needs ``centerness``.
        score_thr: Pairs ``(anchor, class)`` must score above it.
        nms_pre: The best pairs kept per level before NMS (mmdet slices ``[:nms_pre]``, so
            -1, mmdet's default when test_cfg has none, drops the lowest pair of a level).
        min_bbox_size: Boxes must be wider and taller than it (negative: no filter).
        nms_cfg: mmcv ``batched_nms`` settings, e.g. ``{'iou_threshold': 0.5}``.
        max_per_img: The detections kept after NMS.
    """

    num_classes: int
    cell_anchors: List[np.ndarray]
    strides: List[Tuple[float, float]]
    use_sigmoid: bool = True
    means: Tuple[float, ...] = (0., 0., 0., 0.)
    stds: Tuple[float, ...] = (1., 1., 1., 1.)
    wh_ratio_clip: float = DEFAULT_WH_RATIO_CLIP
    clip_border: bool = True
    add_ctr_clamp: bool = False
    ctr_clamp: float = 32
    with_centerness: bool = False
    score_thr: float = 0.0
    nms_pre: int = 1000
    min_bbox_size: float = -1
    nms_cfg: Dict[str, Any] = field(default_factory=lambda: dict(iou_threshold=0.5))
    max_per_img: int = 100

    def __post_init__(self) -> None:
        if len(self.cell_anchors) == 0 or len(self.cell_anchors) != len(self.strides):
            raise ValueError(f'cell_anchors ({len(self.cell_anchors)} levels) and strides '
                             f'({len(self.strides)}) must be as long, and not empty')
        self.cell_anchors = [np.asarray(a, dtype=F32).reshape(-1, 4) for a in self.cell_anchors]
        self.strides = [_pair(s, 'strides[i]') for s in self.strides]
        if len(self.means) != 4 or len(self.stds) != 4:
            raise ValueError(f'means and stds must have 4 values, got {self.means!r}, '
                             f'{self.stds!r}')
        if not 0 < self.wh_ratio_clip < 1:
            raise ValueError(f'wh_ratio_clip must be in (0, 1), got {self.wh_ratio_clip!r}')
        self._check_settings()

    @property
    def num_levels(self) -> int:
        """Pyramid levels the decoder expects."""
        return len(self.cell_anchors)

    def priors_per_location(self, level: int) -> int:
        """The anchors of one cell of ``level``."""
        return self.cell_anchors[level].shape[0]

    @classmethod
    def from_config(cls, bbox_head: Mapping[str, Any],
                    test_cfg: Optional[Mapping[str, Any]] = None) -> AnchorDecoder:
        """From an mmdet anchor head's config dict (``cfg.model.bbox_head``).

        ``test_cfg`` defaults to ``bbox_head['test_cfg']`` (mmdet copies ``model.test_cfg``
        there when it builds the detector). An ``ATSSHead`` decodes with its centerness.
        """
        if not isinstance(bbox_head, Mapping):
            raise TypeError(f'bbox_head must be a config dict, got {type(bbox_head).__name__}')
        head_type = _type_name(bbox_head.get('type'))
        if head_type in REFUSED_ANCHOR_HEADS:
            raise ValueError(f'{head_type} decodes its boxes its own way (score voting, '
                             'decoded box outputs or an IoU branch); AnchorDecoder decodes '
                             'BaseDenseHead anchor heads (RetinaNet, ATSS)')
        gen = dict(bbox_head.get('anchor_generator') or {})
        gen_type = _type_name(gen.pop('type', None))
        if gen_type != 'AnchorGenerator':
            raise ValueError(f"bbox_head.anchor_generator.type must be 'AnchorGenerator', got "
                             f'{gen_type!r}')
        coder = dict(bbox_head.get('bbox_coder') or {})
        coder_type = _type_name(coder.pop('type', None))
        if coder_type != 'DeltaXYWHBBoxCoder':
            raise ValueError(f"bbox_head.bbox_coder.type must be 'DeltaXYWHBBoxCoder', got "
                             f'{coder_type!r}')
        strides = [_pair(s, 'anchor_generator.strides[i]') for s in gen.pop('strides')]
        base_sizes = gen.pop('base_sizes', None) or [min(s) for s in strides]
        scales = gen.pop('scales', None)
        octave, per_octave = gen.pop('octave_base_scale', None), gen.pop('scales_per_octave', None)
        if (scales is None) == (octave is None or per_octave is None):
            raise ValueError('anchor_generator needs either scales or octave_base_scale with '
                             'scales_per_octave')
        if scales is None:
            scales = [octave * 2 ** (i / per_octave) for i in range(per_octave)]
        centers = gen.pop('centers', None)
        center_offset = gen.pop('center_offset', 0.0)
        ratios = gen.pop('ratios')
        scale_major = gen.pop('scale_major', True)
        gen.pop('use_box_type', None)
        if gen:
            raise ValueError(f'anchor_generator has unknown keys {sorted(gen)}')
        cells = [base_anchors(size, scales, ratios, scale_major,
                              None if centers is None else centers[i], center_offset)
                 for i, size in enumerate(base_sizes)]
        test = bbox_head.get('test_cfg') if test_cfg is None else test_cfg
        return cls._build(num_classes=bbox_head['num_classes'], cells=cells, strides=strides,
                          use_sigmoid=_use_sigmoid(bbox_head), coder=coder, test_cfg=test,
                          with_centerness=head_type in CENTERNESS_ANCHOR_HEADS)

    @classmethod
    def from_head(cls, bbox_head: Any,
                  test_cfg: Optional[Mapping[str, Any]] = None) -> AnchorDecoder:
        """From a built mmdet anchor head (e.g. ``model.bbox_head`` of a RetinaNet or ATSS).

        Takes the head's own base anchors, coder settings and ``test_cfg`` (unless given); an
        ``ATSSHead`` (its own forward: scores, deltas, centerness) decodes with centerness.

        Raises:
            TypeError: the head is not an anchor head whose ``predict_by_feat`` is mmdet's
                ``BaseDenseHead``'s with an ``AnchorGenerator`` and a ``DeltaXYWHBBoxCoder``,
                or its forward gives outputs other than those.
        """
        from mmdet.models.dense_heads import ATSSHead
        from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
        from mmdet.models.task_modules.prior_generators import AnchorGenerator

        _check_base_predict(bbox_head, 'AnchorDecoder')
        name = type(bbox_head).__name__
        gen = getattr(bbox_head, 'prior_generator', None)
        if not isinstance(gen, AnchorGenerator) or \
                type(gen).single_level_grid_priors is not AnchorGenerator.single_level_grid_priors:
            raise TypeError(f'{name}.prior_generator must be an AnchorGenerator, got '
                            f'{type(gen).__name__}')
        coder = bbox_head.bbox_coder
        if type(coder) is not DeltaXYWHBBoxCoder:
            raise TypeError(f'{name}.bbox_coder must be a DeltaXYWHBBoxCoder, got '
                            f'{type(coder).__name__}')
        with_centerness = _centerness_from_head(bbox_head, gen.num_levels, ATSSHead)
        coder_cfg = dict(target_means=coder.means, target_stds=coder.stds,
                         clip_border=coder.clip_border, add_ctr_clamp=coder.add_ctr_clamp,
                         ctr_clamp=coder.ctr_clamp)
        return cls._build(num_classes=bbox_head.num_classes,
                          cells=[a.detach().cpu().float().numpy() for a in gen.base_anchors],
                          strides=list(gen.strides), use_sigmoid=bool(bbox_head.use_sigmoid_cls),
                          coder=coder_cfg,
                          test_cfg=bbox_head.test_cfg if test_cfg is None else test_cfg,
                          with_centerness=with_centerness)

    @classmethod
    def _build(cls, num_classes: int, cells: List[np.ndarray], strides: List[Tuple],
               use_sigmoid: bool, coder: Mapping[str, Any],
               test_cfg: Optional[Mapping[str, Any]],
               with_centerness: bool = False) -> AnchorDecoder:
        test = cls._test_settings(test_cfg)
        unknown = set(coder) - {'target_means', 'target_stds', 'clip_border', 'add_ctr_clamp',
                                'ctr_clamp', 'use_box_type'}
        if unknown:
            raise ValueError(f'bbox_coder has unknown keys {sorted(unknown)}')
        return cls(num_classes=int(num_classes), cell_anchors=cells, strides=strides,
                   use_sigmoid=use_sigmoid,
                   means=tuple(float(v) for v in coder.get('target_means', (0.,) * 4)),
                   stds=tuple(float(v) for v in coder.get('target_stds', (1.,) * 4)),
                   clip_border=bool(coder.get('clip_border', True)),
                   add_ctr_clamp=bool(coder.get('add_ctr_clamp', False)),
                   ctr_clamp=coder.get('ctr_clamp', 32), with_centerness=with_centerness,
                   **test)

    def anchors(self, featmap_sizes: Sequence[Tuple[int, int]]) -> List[np.ndarray]:
        """Per level, the ``(H * W * A, 4)`` anchors for maps of ``featmap_sizes``."""
        if len(featmap_sizes) != self.num_levels:
            raise ValueError(f'expected {self.num_levels} feature map sizes, got '
                             f'{len(featmap_sizes)}')
        return [grid_anchors(cell, size, stride)
                for cell, size, stride in zip(self.cell_anchors, featmap_sizes, self.strides)]

    def priors(self, featmap_sizes: Sequence[Tuple[int, int]]) -> List[np.ndarray]:
        """:meth:`anchors`."""
        return self.anchors(featmap_sizes)

    def _boxes(self, priors: np.ndarray, preds: np.ndarray,
               img_shape: Tuple[int, int]) -> np.ndarray:
        return delta_to_boxes(priors, preds, self.means, self.stds, img_shape,
                              self.wh_ratio_clip, self.clip_border, self.add_ctr_clamp,
                              self.ctr_clamp)


@dataclass
class PointDecoder(_DenseDecoding):
    """Raw anchor-free (FCOS) head maps -> ``boxes``, ``scores``, ``labels``.

    One point per location, ``((x + offset) * stride_w, (y + offset) * stride_h)``; the box
    maps are the distances ``(left, top, right, bottom)`` as the head's forward gives them in
    eval mode (FCOS with ``norm_on_bbox`` already multiplies them by the stride there), decoded
    as ``DistancePointBBoxCoder`` does; the scores are multiplied by the centerness sigmoid.

    Attributes:
        num_classes: Foreground classes.
        strides: Per level, ``(stride_w, stride_h)``.
        offset: The points' offset within a cell, in strides (``MlvlPointGenerator``'s 0.5).
        use_sigmoid: Sigmoid scores (True) or softmax with a background column (False).
        clip_border: Clip decoded boxes to the image.
        with_centerness: The scores are multiplied by the sigmoid of a centerness branch.
        score_thr, nms_pre, min_bbox_size, nms_cfg, max_per_img: as :class:`AnchorDecoder`'s.
    """

    num_classes: int
    strides: List[Tuple[float, float]]
    offset: float = 0.5
    use_sigmoid: bool = True
    clip_border: bool = True
    with_centerness: bool = True
    score_thr: float = 0.0
    nms_pre: int = 1000
    min_bbox_size: float = -1
    nms_cfg: Dict[str, Any] = field(default_factory=lambda: dict(iou_threshold=0.5))
    max_per_img: int = 100

    def __post_init__(self) -> None:
        if isinstance(self.strides, (str, bytes)) or not isinstance(self.strides, Sequence) \
                or len(self.strides) == 0:
            raise ValueError(f'strides must be a non-empty list (one per level), got '
                             f'{self.strides!r}')
        self.strides = [_pair(s, 'strides[i]') for s in self.strides]
        if not isinstance(self.offset, numbers.Real) or not math.isfinite(self.offset):
            raise ValueError(f'offset must be a finite number, got {self.offset!r}')
        self._check_settings()

    @property
    def num_levels(self) -> int:
        """Pyramid levels the decoder expects."""
        return len(self.strides)

    def priors_per_location(self, level: int) -> int:
        """One point per location."""
        return 1

    @classmethod
    def from_config(cls, bbox_head: Mapping[str, Any],
                    test_cfg: Optional[Mapping[str, Any]] = None) -> PointDecoder:
        """From an mmdet ``FCOSHead`` config dict (``cfg.model.bbox_head``).

        ``test_cfg`` defaults to ``bbox_head['test_cfg']``.
        """
        if not isinstance(bbox_head, Mapping):
            raise TypeError(f'bbox_head must be a config dict, got {type(bbox_head).__name__}')
        head_type = _type_name(bbox_head.get('type'))
        if head_type not in POINT_HEADS:
            raise ValueError(f'bbox_head.type must be one of {POINT_HEADS}, got {head_type!r}')
        coder = dict(bbox_head.get('bbox_coder') or dict(type='DistancePointBBoxCoder'))
        coder_type = _type_name(coder.pop('type', None))
        if coder_type != 'DistancePointBBoxCoder':
            raise ValueError(f"bbox_head.bbox_coder.type must be 'DistancePointBBoxCoder', got "
                             f'{coder_type!r}')
        clip_border = bool(coder.pop('clip_border', True))
        coder.pop('use_box_type', None)
        if coder:
            raise ValueError(f'bbox_coder has unknown keys {sorted(coder)}')
        test = bbox_head.get('test_cfg') if test_cfg is None else test_cfg
        return cls(num_classes=int(bbox_head['num_classes']),
                   strides=list(bbox_head.get('strides', DEFAULT_POINT_STRIDES)),
                   offset=DEFAULT_POINT_OFFSET, use_sigmoid=_use_sigmoid(bbox_head),
                   clip_border=clip_border, with_centerness=True,
                   **cls._test_settings(test))

    @classmethod
    def from_head(cls, bbox_head: Any,
                  test_cfg: Optional[Mapping[str, Any]] = None) -> PointDecoder:
        """From a built mmdet point head (e.g. ``model.bbox_head`` of an FCOS).

        Raises:
            TypeError: the head's ``predict_by_feat`` is not ``BaseDenseHead``'s, its prior
                generator is not an ``MlvlPointGenerator``, its coder not a
                ``DistancePointBBoxCoder``, or its forward gives other outputs than scores,
                distances and FCOS's centerness.
        """
        from mmdet.models.dense_heads import FCOSHead
        from mmdet.models.task_modules.coders import DistancePointBBoxCoder
        from mmdet.models.task_modules.prior_generators import MlvlPointGenerator

        _check_base_predict(bbox_head, 'PointDecoder')
        name = type(bbox_head).__name__
        gen = getattr(bbox_head, 'prior_generator', None)
        if type(gen) is not MlvlPointGenerator:
            raise TypeError(f'{name}.prior_generator must be an MlvlPointGenerator, got '
                            f'{type(gen).__name__}')
        coder = bbox_head.bbox_coder
        if type(coder) is not DistancePointBBoxCoder:
            raise TypeError(f'{name}.bbox_coder must be a DistancePointBBoxCoder, got '
                            f'{type(coder).__name__}')
        with_centerness = _centerness_from_head(bbox_head, gen.num_levels, FCOSHead)
        return cls(num_classes=int(bbox_head.num_classes), strides=list(gen.strides),
                   offset=float(gen.offset), use_sigmoid=bool(bbox_head.use_sigmoid_cls),
                   clip_border=bool(coder.clip_border), with_centerness=with_centerness,
                   **cls._test_settings(bbox_head.test_cfg if test_cfg is None else test_cfg))

    def points(self, featmap_sizes: Sequence[Tuple[int, int]]) -> List[np.ndarray]:
        """Per level, the ``(H * W, 2)`` float32 points ``(x, y)`` in row-major order."""
        if len(featmap_sizes) != self.num_levels:
            raise ValueError(f'expected {self.num_levels} feature map sizes, got '
                             f'{len(featmap_sizes)}')
        return [grid_points(size, stride, self.offset)
                for size, stride in zip(featmap_sizes, self.strides)]

    def priors(self, featmap_sizes: Sequence[Tuple[int, int]]) -> List[np.ndarray]:
        """:meth:`points`."""
        return self.points(featmap_sizes)

    def _boxes(self, priors: np.ndarray, preds: np.ndarray,
               img_shape: Tuple[int, int]) -> np.ndarray:
        return distance_to_boxes(priors, preds, img_shape if self.clip_border else None)


def decoder_from_config(bbox_head: Mapping[str, Any],
                        test_cfg: Optional[Mapping[str, Any]] = None
                        ) -> Union[AnchorDecoder, PointDecoder]:
    """The decoder of an mmdet one-stage head config: :class:`PointDecoder` for ``FCOSHead``,
    :class:`AnchorDecoder` for an anchor head (RetinaNet, ATSS with its centerness)."""
    if not isinstance(bbox_head, Mapping):
        raise TypeError(f'bbox_head must be a config dict, got {type(bbox_head).__name__}')
    if _type_name(bbox_head.get('type')) in POINT_HEADS:
        return PointDecoder.from_config(bbox_head, test_cfg)
    return AnchorDecoder.from_config(bbox_head, test_cfg)
