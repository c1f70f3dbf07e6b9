"""densekit's numpy box decoding and NMS against mmdet's ``predict_by_feat`` and mmcv's NMS.

The reference is mmdet itself run on the same raw head outputs: a RetinaNet (the CPU config,
seeded random weights with a spread-out classification layer so scores and boxes vary) fed a
real photo, and the heads with a centerness branch (FCOS from its CPU config, an ATSS head
built from a small config here) fed seeded random maps of the shapes their forward gives.
Both sides compute in float32; they may differ by float32 rounding only (sigmoid and exp
differ by one ulp between torch and numpy), so boxes are held to 1e-3 px, scores to 1e-6,
labels and the number of detections exactly.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from mmcv.ops import batched_nms as mmcv_batched_nms
from mmengine.config import ConfigDict
from mmengine.registry import MODELS, init_default_scope
from skimage import data as photos

import densekit  # noqa: F401
from densekit.apis import load_config
from densekit.tasks.detection.decode import (
    AnchorDecoder,
    PointDecoder,
    base_anchors,
    batched_nms,
    decoder_from_config,
    nms,
)
from tests.conftest import DET_CONFIG, REPO

FCOS_CONFIG = REPO / 'configs' / 'detection' / 'fcos_r18-half_fpn_1xb8-1500i_shapes-160x160.py'

BOX_TOL = 1e-3
SCORE_TOL = 1e-6


@pytest.fixture(scope='module')
def retinanet() -> torch.nn.Module:
    cfg = load_config(str(DET_CONFIG))
    init_default_scope('densekit')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    head = model.bbox_head
    with torch.no_grad():  # logits spread over about +-6, per-class offsets, larger deltas
        head.retina_cls.weight.mul_(4.0)
        head.retina_cls.bias.copy_(torch.randn(head.retina_cls.bias.shape) * 1.5 - 2.0)
        head.retina_reg.weight.mul_(3.0)
    return model


def _raw_outputs(model: torch.nn.Module, height: int, width: int, seed: int = 0):
    """The head's raw maps for the astronaut photo resized to (height, width), zero-padded to
    a multiple of 32 as DetDataPreprocessor pads it."""
    photo = cv2.resize(photos.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
    padded = np.zeros((-(-height // 32) * 32, -(-width // 32) * 32, 3), np.float32)
    padded[:height, :width] = photo
    x = torch.from_numpy((padded - 127.5) / 64.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        cls_scores, bbox_preds = model.bbox_head(model.extract_feat(x))
    return list(cls_scores), list(bbox_preds)


def _mmdet(model, cls_scores, bbox_preds, metas, test_cfg=None):
    with torch.no_grad():
        return model.bbox_head.predict_by_feat(
            cls_scores, bbox_preds, batch_img_metas=metas,
            cfg=None if test_cfg is None else ConfigDict(test_cfg), rescale=True)


def _assert_same(got: dict, want) -> None:
    assert got['boxes'].dtype == np.float32 and got['scores'].dtype == np.float32
    assert got['labels'].dtype == np.int64
    assert len(got['boxes']) == len(want.bboxes)
    np.testing.assert_array_equal(got['labels'], want.labels.numpy())
    np.testing.assert_allclose(got['boxes'], want.bboxes.numpy(), rtol=0, atol=BOX_TOL)
    np.testing.assert_allclose(got['scores'], want.scores.numpy(), rtol=0, atol=SCORE_TOL)


def test_anchors_from_config_equal_mmdet_grid_priors(retinanet) -> None:
    cfg = load_config(str(DET_CONFIG))
    from_cfg = AnchorDecoder.from_config(cfg.model.bbox_head, cfg.model.test_cfg)
    from_head = AnchorDecoder.from_head(retinanet.bbox_head)
    sizes = [(13, 17), (7, 9), (4, 5), (2, 3)]
    want = retinanet.bbox_head.prior_generator.grid_priors(sizes, device='cpu')
    for got_cfg, got_head, ref in zip(from_cfg.anchors(sizes), from_head.anchors(sizes), want):
        np.testing.assert_array_equal(got_cfg, ref.numpy())
        np.testing.assert_array_equal(got_head, ref.numpy())
    # hand-derived: stride 8, octave_base_scale 4, ratio 1 (index 1 of 3), first of 2 scales
    # (anchor 1 * 2 + 0) -> a 32x32 square
    # centred on the cell's top-left corner
    np.testing.assert_array_equal(from_cfg.cell_anchors[0][2], [-16, -16, 16, 16])
    assert from_cfg.nms_cfg == from_head.nms_cfg and from_cfg.score_thr == 0.05
    # centre_offset 0.5 and scale_major=False agree with mmdet's generator too
    from mmdet.models.task_modules.prior_generators import AnchorGenerator
    gen = AnchorGenerator(strides=[16], ratios=[0.5, 2.0], scales=[1.5, 3.0],
                          scale_major=False, center_offset=0.5)
    np.testing.assert_array_equal(
        base_anchors(16, [1.5, 3.0], [0.5, 2.0], scale_major=False, center_offset=0.5),
        gen.base_anchors[0].numpy())


WIDE_CFG = dict(nms_pre=-1, min_bbox_size=-1, score_thr=0.0,
                nms=dict(type='nms', iou_threshold=0.6), max_per_img=300)


@pytest.mark.parametrize('height, width, scale_factor, test_cfg', [
    (97, 131, (1.0, 1.0), None),
    (160, 160, (1.0, 1.0), None),
    (120, 90, (0.8, 0.6), None),  # an original image of 150x150 resized to 120x90
    (97, 131, (1.0, 1.0), WIDE_CFG),  # every pair, no size filter: per-class NMS (>10000 boxes)
])
def test_decode_matches_mmdet_predict_by_feat(retinanet, height, width, scale_factor,
                                              test_cfg) -> None:
    cls_scores, bbox_preds = _raw_outputs(retinanet, height, width)
    meta = dict(img_shape=(height, width), scale_factor=scale_factor)
    want = _mmdet(retinanet, cls_scores, bbox_preds, [meta], test_cfg)[0]
    decoder = AnchorDecoder.from_head(retinanet.bbox_head, test_cfg)
    got = decoder.decode([c.numpy() for c in cls_scores], [b.numpy() for b in bbox_preds],
                         (height, width), scale_factor)
    assert len(want.bboxes) == (300 if test_cfg else 100)  # informative, not a trivial case
    _assert_same(got, want)
    # the boxes lie in the original image (clipped to the network input before rescaling)
    limits = np.array([width, height, width, height]) / np.array(scale_factor * 2)
    assert (got['boxes'] >= 0).all() and (got['boxes'] <= limits + BOX_TOL).all()


def test_decode_batch_and_config_dict_decoder(retinanet) -> None:
    first, second = _raw_outputs(retinanet, 97, 131), _raw_outputs(retinanet, 64, 128)
    cls_scores = [torch.cat([a, torch.flip(a, dims=(-1,))]) for a in first[0]]
    bbox_preds = [torch.cat([a, b * 0.5]) for a, b in zip(first[1], first[1])]
    metas = [dict(img_shape=(97, 131), scale_factor=(1.0, 1.0)),
             dict(img_shape=(90, 131), scale_factor=(0.5, 0.5))]
    want = _mmdet(retinanet, cls_scores, bbox_preds, metas)
    cfg = load_config(str(DET_CONFIG))
    decoder = AnchorDecoder.from_config(cfg.model.bbox_head, cfg.model.test_cfg)
    got = decoder.decode_batch([c.numpy() for c in cls_scores], [b.numpy() for b in bbox_preds],
                               [m['img_shape'] for m in metas],
                               [m['scale_factor'] for m in metas])
    for one, ref in zip(got, want):
        _assert_same(one, ref)
    # 3D maps (no batch axis) decode the same
    single = decoder.decode([c[0].numpy() for c in second[0]], [b[0].numpy() for b in second[1]],
                            (64, 128))
    _assert_same(single, _mmdet(retinanet, *second, [dict(img_shape=(64, 128),
                                                          scale_factor=(1.0, 1.0))])[0])


def test_no_score_above_the_threshold_gives_empty_arrays(retinanet) -> None:
    cls_scores, bbox_preds = _raw_outputs(retinanet, 97, 131)
    cls_scores = [c - 30.0 for c in cls_scores]  # every sigmoid below 1e-9
    meta = dict(img_shape=(97, 131), scale_factor=(1.0, 1.0))
    want = _mmdet(retinanet, cls_scores, bbox_preds, [meta])[0]
    got = AnchorDecoder.from_head(retinanet.bbox_head).decode(
        [c.numpy() for c in cls_scores], [b.numpy() for b in bbox_preds], (97, 131), 1.0)
    assert len(want.bboxes) == 0
    assert got['boxes'].shape == (0, 4) and got['scores'].shape == (0,)
    assert got['labels'].shape == (0,)
    _assert_same(got, want)


@pytest.mark.parametrize('seed, iou, options', [
    (0, 0.5, {}), (1, 0.3, {}), (2, 0.6, dict(offset=1)), (3, 0.5, dict(class_agnostic=True)),
    (4, 0.5, dict(split_thr=50)), (5, 0.4, dict(max_num=20, score_threshold=0.3)),
])
def test_nms_matches_mmcv_batched_nms(seed, iou, options) -> None:
    rng = np.random.default_rng(seed)
    count = 400
    xy = rng.uniform(0, 100, (count, 2))
    wh = rng.uniform(2, 60, (count, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = rng.permutation(count).astype(np.float32) / count + 0.01  # distinct
    labels = rng.integers(0, 4, count)
    cfg = dict(type='nms', iou_threshold=iou, **options)
    _, want = mmcv_batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                               torch.from_numpy(labels), dict(cfg))
    got = batched_nms(boxes, scores, labels, cfg)
    assert 20 <= len(got) < count  # NMS suppressed something and kept something
    np.testing.assert_array_equal(got, want.numpy())


def test_nms_hand_case_and_stable_ties() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [20, 20, 30, 30]],
                     np.float32)
    # box 1 overlaps box 0 with IoU 90 / 110 = 0.818; box 2 is box 0 again with a tied score
    scores = np.array([0.9, 0.8, 0.9, 0.1], np.float32)
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [0, 3])  # tie: the earlier box wins
    np.testing.assert_array_equal(nms(boxes, scores, 0.85)[:2], [0, 1])
    np.testing.assert_array_equal(nms(boxes, scores, 0.85), [0, 1, 3])
    # with labels 0, 1, 0, 0 box 1 is in its own class and survives
    np.testing.assert_array_equal(
        batched_nms(boxes, scores, np.array([0, 1, 0, 0]), dict(iou_threshold=0.5)), [0, 1, 3])


def test_bad_arguments_are_named(retinanet) -> None:
    decoder = AnchorDecoder.from_head(retinanet.bbox_head)
    cls_scores, bbox_preds = _raw_outputs(retinanet, 64, 64)
    cls_np, box_np = [c.numpy() for c in cls_scores], [b.numpy() for b in bbox_preds]
    with pytest.raises(ValueError, match='levels'):
        decoder.decode(cls_np[:3], box_np, (64, 64))
    with pytest.raises(TypeError, match='numpy array'):
        decoder.decode(cls_scores, bbox_preds, (64, 64))
    with pytest.raises(ValueError, match='channels'):
        decoder.decode([c[:, :-1] for c in cls_np], box_np, (64, 64))
    with pytest.raises(ValueError, match='decode_batch'):
        decoder.decode([np.concatenate([c, c]) for c in cls_np], box_np, (64, 64))
    with pytest.raises(ValueError, match='img_shape'):
        decoder.decode(cls_np, box_np, (64, 0))
    with pytest.raises(ValueError, match='scale_factor'):
        decoder.decode(cls_np, box_np, (64, 64), (1.0, -2.0))
    with pytest.raises(ValueError, match='differ in size'):
        decoder.decode(cls_np, [b[..., :-1] for b in box_np], (64, 64))
    with pytest.raises(ValueError, match='soft_nms'):
        AnchorDecoder.from_head(retinanet.bbox_head, dict(nms=dict(type='soft_nms',
                                                                   iou_threshold=0.5)))
    with pytest.raises(ValueError, match='test_cfg must give nms'):
        AnchorDecoder.from_head(retinanet.bbox_head, dict(score_thr=0.1))
    cfg = load_config(str(DET_CONFIG))
    head_cfg = cfg.model.bbox_head.copy()
    head_cfg['bbox_coder'] = dict(type='mmdet.DistancePointBBoxCoder')
    with pytest.raises(ValueError, match='DeltaXYWHBBoxCoder'):
        AnchorDecoder.from_config(head_cfg, cfg.model.test_cfg)
    with pytest.raises(TypeError, match='dense head'):
        AnchorDecoder.from_head(torch.nn.Conv2d(1, 1, 1))


def test_decoding_needs_numpy_only() -> None:
    """The module decodes with torch and mmdet unimportable (loaded by its file path)."""
    import subprocess
    import sys

    path = REPO / 'densekit' / 'tasks' / 'detection' / 'decode.py'
    script = (
        'import sys, importlib.util\n'
        "for name in ('torch', 'mmdet', 'mmcv', 'mmengine'): sys.modules[name] = None\n"
        f"spec = importlib.util.spec_from_file_location('decode', {str(path)!r})\n"
        'mod = sys.modules["decode"] = importlib.util.module_from_spec(spec)\n'
        'spec.loader.exec_module(mod)\n'
        'import numpy as np\n'
        "dec = mod.AnchorDecoder(num_classes=2, cell_anchors=[mod.base_anchors(8, [4], [1.0])],\n"
        "                        strides=[8], score_thr=0.5, nms_cfg=dict(iou_threshold=0.5))\n"
        'cls = np.full((1, 2, 2, 3), -9.0, np.float32); cls[0, 1, 1, 2] = 3.0\n'
        'out = dec.decode([cls], [np.zeros((1, 4, 2, 3), np.float32)], (20, 30))\n'
        "print(out['boxes'].tolist(), out['labels'].tolist())\n")
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    # anchor of cell (row 1, col 2): centre (16, 8), 32x32, clipped to the 30x20 image
    assert result.stdout.strip() == '[[0.0, 0.0, 30.0, 20.0]] [1]'


def test_numpy_detector_matches_the_onnxruntime_predictor(tmp_path) -> None:
    """End to end: pipeline redone in numpy/cv2, decoding in numpy, against the onnxruntime
    backend (the same graph; mmdet's pipeline and predict_by_feat around it)."""
    from densekit.export import export_onnx, numpy_detector
    from tests.test_inference_safety import _save_model

    ckpt = _save_model(DET_CONFIG, tmp_path / 'det.pth')
    export_onnx(str(DET_CONFIG), ckpt, str(tmp_path / 'det.onnx'))
    keep = {'model.test_cfg.score_thr': 0.0}
    reference = densekit.Predictor(str(DET_CONFIG), str(tmp_path / 'det.onnx'),
                                   backend='onnxruntime', cfg_options=keep)
    detector = numpy_detector(str(DET_CONFIG), str(tmp_path / 'det.onnx'), cfg_options=keep)
    assert detector.scale == (160, 160) and detector.pad_divisor == 32
    for height, width in ((97, 131), (200, 150)):  # upscaled and downscaled to 160
        image = cv2.resize(photos.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
        want, got = reference.predict(image), detector(image)
        assert len(got['boxes']) == len(want['boxes']) == 100
        np.testing.assert_array_equal(got['labels'], want['labels'])
        np.testing.assert_allclose(got['boxes'], want['boxes'], rtol=0, atol=BOX_TOL)
        np.testing.assert_allclose(got['scores'], want['scores'], rtol=0, atol=SCORE_TOL)


def test_nms_pre_minus_one_drops_the_lowest_pair_like_mmdet() -> None:
    from mmdet.models.utils import filter_scores_and_topk

    logits = np.full((1, 2, 2, 3), -9.0, np.float32)
    logits[0, 1, 1, 2], logits[0, 0, 0, 0] = 3.0, 2.0  # two pairs above 0.5
    scores = torch.sigmoid(torch.from_numpy(logits[0]).permute(1, 2, 0).reshape(-1, 2))
    for nms_pre, expected in ((-1, 1), (1, 1), (5, 2)):
        kept = filter_scores_and_topk(scores, 0.5, nms_pre)[0]
        decoder = AnchorDecoder(num_classes=2, cell_anchors=[base_anchors(8, [4], [1.0])],
                                strides=[8], score_thr=0.5, nms_pre=nms_pre)
        out = decoder.decode([logits], [np.zeros((1, 4, 2, 3), np.float32)], (20, 30))
        assert len(out['scores']) == len(kept) == expected
        np.testing.assert_allclose(out['scores'], kept.numpy(), rtol=0, atol=SCORE_TOL)




# --- heads with a centerness branch: FCOS (points, distances) and ATSS (anchors, deltas) ---

ATSS_ANCHORS = dict(type='AnchorGenerator', ratios=[0.5, 1.0, 2.0], octave_base_scale=8,
                    scales_per_octave=1, strides=[8, 16, 32])
ATSS_TEST_CFG = dict(nms_pre=300, min_bbox_size=0, score_thr=0.05,
                     nms=dict(type='nms', iou_threshold=0.6), max_per_img=100)
ATSS_HEAD = dict(type='mmdet.ATSSHead', num_classes=3, in_channels=32, feat_channels=32,
                 stacked_convs=1, anchor_generator=ATSS_ANCHORS,
                 bbox_coder=dict(type='mmdet.DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                                 target_stds=[0.1, 0.1, 0.2, 0.2]),
                 loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                               loss_weight=1.0),
                 test_cfg=ATSS_TEST_CFG)


@pytest.fixture(scope='module')
def fcos() -> torch.nn.Module:
    cfg = load_config(str(FCOS_CONFIG))
    init_default_scope('densekit')
    torch.manual_seed(0)
    return MODELS.build(cfg.model).eval()


@pytest.fixture(scope='module')
def atss() -> torch.nn.Module:
    init_default_scope('densekit')
    torch.manual_seed(0)
    return MODELS.build(ConfigDict(ATSS_HEAD)).eval()


def _random_maps(head, height: int, width: int, batch: int, seed: int, boxes: str):
    """Seeded raw maps of the shapes ``head.forward`` gives for a ``(height, width)`` image
    padded to a multiple of 32: class logits spread over about -7..3 with per-class offsets,
    centerness logits over about +-4, and FCOS distances (non-negative, up to 6 strides, as
    its forward gives them after the ReLU and the stride) or ATSS deltas (unit normal)."""
    rng = np.random.default_rng(seed)
    strides = [s[0] for s in head.prior_generator.strides]
    pad_h, pad_w = -(-height // 32) * 32, -(-width // 32) * 32
    priors = head.num_base_priors
    cls_maps, box_maps, ctr_maps = [], [], []
    offsets = rng.normal(-2.0, 1.0, (1, head.cls_out_channels, 1, 1))
    for stride in strides:
        size = (batch, -(-pad_h // stride), -(-pad_w // stride))
        cls = rng.normal(0.0, 1.5, (size[0], priors * head.cls_out_channels) + size[1:])
        cls_maps.append(cls + np.tile(offsets, (1, priors, 1, 1)))
        if boxes == 'distances':
            box_maps.append(rng.uniform(0.0, 6.0 * stride, (size[0], 4) + size[1:]))
        else:
            box_maps.append(rng.normal(0.0, 1.0, (size[0], priors * 4) + size[1:]))
        ctr_maps.append(rng.normal(0.0, 2.0, (size[0], priors) + size[1:]))
    as32 = [[m.astype(np.float32) for m in group] for group in (cls_maps, box_maps, ctr_maps)]
    return tuple(as32)


def _no_tie_at_the_cut(head, cls_maps, test_cfg) -> None:
    """The maps are a fair case: at each level's ``nms_pre`` cut the scores on either side
    differ by more than float32 rounding. (Where they tie, torch.sort's order among equal
    scores, which is unspecified, picks the pair that is kept; decode keeps the earlier one.)"""
    cfg = head.test_cfg if test_cfg is None else test_cfg
    for level in cls_maps:
        for image in level:
            logits = image.transpose(1, 2, 0).reshape(-1).astype(np.float64)
            valid = np.sort(1.0 / (1.0 + np.exp(-logits)))[::-1]
            valid = valid[valid > cfg.get('score_thr', 0)]
            cut = cfg['nms_pre'] if cfg['nms_pre'] > 0 else valid.size + cfg['nms_pre']
            if 0 < cut < valid.size:
                assert valid[cut - 1] - valid[cut] > 1e-6, 'a tie at the nms_pre cut: reseed'


def _mmdet_with_centerness(head, maps, metas, test_cfg=None):
    _no_tie_at_the_cut(head, maps[0], test_cfg)
    cls_maps, box_maps, ctr_maps = ([torch.from_numpy(m) for m in group] for group in maps)
    with torch.no_grad():
        return head.predict_by_feat(cls_maps, box_maps, score_factors=ctr_maps,
                                    batch_img_metas=metas,
                                    cfg=None if test_cfg is None else ConfigDict(test_cfg),
                                    rescale=True)


def _measured(got: dict, want) -> tuple:
    """(max box diff, max score diff) of matched detections, for the record."""
    return (float(np.abs(got['boxes'] - want.bboxes.numpy()).max(initial=0.0)),
            float(np.abs(got['scores'] - want.scores.numpy()).max(initial=0.0)))


def test_fcos_decoder_from_config_and_from_head_give_mmdet_points(fcos) -> None:
    cfg = load_config(str(FCOS_CONFIG))
    from_cfg = decoder_from_config(cfg.model.bbox_head, cfg.model.test_cfg)
    from_head = PointDecoder.from_head(fcos.bbox_head)
    assert isinstance(from_cfg, PointDecoder) and from_cfg == from_head
    assert from_cfg.with_centerness and from_cfg.offset == 0.5 and from_cfg.min_bbox_size == 0
    assert from_cfg.strides == [(8, 8), (16, 16), (32, 32), (64, 64)]
    sizes = [(13, 17), (7, 9), (4, 5), (2, 3)]
    want = fcos.bbox_head.prior_generator.grid_priors(sizes, device='cpu')
    for got, ref in zip(from_cfg.points(sizes), want):
        np.testing.assert_array_equal(got, ref.numpy())
    # hand-derived: the point of row 1, column 2 at stride 8 is ((2 + 0.5) * 8, (1 + 0.5) * 8)
    np.testing.assert_array_equal(from_cfg.points(sizes)[0][17 + 2], [20.0, 12.0])
    # the exported box maps are distances in pixels: FCOS's forward (eval) has applied the
    # ReLU and the stride of norm_on_bbox, so the decoder adds no scaling of its own
    feats = tuple(torch.randn(1, 64, h, w) for h, w in sizes)
    with torch.no_grad():
        _, box_maps, _ = fcos.bbox_head(feats)
    assert all((b >= 0).all() for b in box_maps)


@pytest.mark.parametrize('height, width, scale_factor, test_cfg', [
    (97, 131, (1.0, 1.0), None),
    (161, 75, (1.0, 1.0), None),
    (120, 90, (0.8, 0.6), None),  # an original image of 150x150 resized to 120x90
    (97, 131, (1.0, 1.0), WIDE_CFG),  # every pair, no size filter, 300 kept
])
def test_fcos_decode_matches_mmdet_predict_by_feat(fcos, height, width, scale_factor,
                                                   test_cfg) -> None:
    maps = _random_maps(fcos.bbox_head, height, width, 1, seed=height + width,
                        boxes='distances')
    meta = dict(img_shape=(height, width), scale_factor=scale_factor)
    want = _mmdet_with_centerness(fcos.bbox_head, maps, [meta], test_cfg)[0]
    decoder = PointDecoder.from_head(fcos.bbox_head, test_cfg)
    got = decoder.decode(maps[0], maps[1], (height, width), scale_factor, centerness=maps[2])
    assert len(want.bboxes) == (300 if test_cfg else 100)  # informative, not a trivial case
    _assert_same(got, want)
    limits = np.array([width, height, width, height]) / np.array(scale_factor * 2)
    assert (got['boxes'] >= 0).all() and (got['boxes'] <= limits + BOX_TOL).all()
    # the centerness factor is in the scores: without it they are not mmdet's
    plain = PointDecoder.from_head(fcos.bbox_head, test_cfg)
    plain.with_centerness = False
    unscaled = plain.decode(maps[0], maps[1], (height, width), scale_factor)
    assert not np.allclose(unscaled['scores'][:10], got['scores'][:10])


@pytest.mark.parametrize('height, width, scale_factor', [
    (97, 131, (1.0, 1.0)), (75, 161, (0.5, 0.75)),
])
def test_atss_decode_matches_mmdet_predict_by_feat(atss, height, width, scale_factor) -> None:
    maps = _random_maps(atss, height, width, 1, seed=height * width, boxes='deltas')
    meta = dict(img_shape=(height, width), scale_factor=scale_factor)
    want = _mmdet_with_centerness(atss, maps, [meta])[0]
    from_head = AnchorDecoder.from_head(atss)
    from_cfg = decoder_from_config(ATSS_HEAD)
    assert from_head.with_centerness and isinstance(from_cfg, AnchorDecoder)
    # the same anchors, coder and test settings
    for got, ref in zip(from_cfg.cell_anchors, from_head.cell_anchors):
        np.testing.assert_array_equal(got, ref)
    settings = [{k: v for k, v in vars(d).items() if k != 'cell_anchors'}
                for d in (from_cfg, from_head)]
    assert settings[0] == settings[1]
    for decoder in (from_head, from_cfg):
        got = decoder.decode(maps[0], maps[1], (height, width), scale_factor, maps[2])
        assert len(want.bboxes) == 100
        _assert_same(got, want)


@pytest.mark.parametrize('kind', ['fcos', 'atss'])
def test_centerness_decode_batch_of_two_matches_mmdet(fcos, atss, kind) -> None:
    head = fcos.bbox_head if kind == 'fcos' else atss
    maps = _random_maps(head, 97, 131, 2, seed=7, boxes='distances' if kind == 'fcos'
                        else 'deltas')
    metas = [dict(img_shape=(97, 131), scale_factor=(1.0, 1.0)),
             dict(img_shape=(90, 121), scale_factor=(0.5, 0.5))]  # the second one smaller
    want = _mmdet_with_centerness(head, maps, metas)
    decoder = PointDecoder.from_head(head) if kind == 'fcos' else AnchorDecoder.from_head(head)
    got = decoder.decode_batch(maps[0], maps[1], [m['img_shape'] for m in metas],
                               [m['scale_factor'] for m in metas], centerness=maps[2])
    assert len(got) == 2
    for one, ref in zip(got, want):
        assert len(ref.bboxes) == 100
        _assert_same(one, ref)
    assert not np.allclose(got[0]['boxes'][:5], got[1]['boxes'][:5])


def test_centerness_decoders_refuse_bad_input(fcos, atss) -> None:
    from mmdet.models.dense_heads import ATSSHead

    maps = _random_maps(fcos.bbox_head, 64, 64, 1, seed=0, boxes='distances')
    decoder = PointDecoder.from_head(fcos.bbox_head)
    with pytest.raises(ValueError, match='centerness is required'):
        decoder.decode(maps[0], maps[1], (64, 64))
    with pytest.raises(ValueError, match=r'centerness\[1\] has shape'):
        decoder.decode(maps[0], maps[1], (64, 64),
                       centerness=[maps[2][0]] + [m[:, :, :-1] for m in maps[2][1:]])
    with pytest.raises(ValueError, match='centerness has 3 levels'):
        decoder.decode(maps[0], maps[1], (64, 64), centerness=maps[2][:3])
    plain = PointDecoder.from_head(fcos.bbox_head)
    plain.with_centerness = False
    with pytest.raises(ValueError, match='without a centerness branch'):
        plain.decode(maps[0], maps[1], (64, 64), centerness=maps[2])
    with pytest.raises(ValueError, match='strides'):
        PointDecoder(num_classes=2, strides=[])
    with pytest.raises(ValueError, match='bbox_head.type'):
        PointDecoder.from_config(load_config(str(DET_CONFIG)).model.bbox_head)
    fcos_cfg = load_config(str(FCOS_CONFIG)).model
    bad = fcos_cfg.bbox_head.copy()
    bad['bbox_coder'] = dict(type='mmdet.DeltaXYWHBBoxCoder')
    with pytest.raises(ValueError, match='DistancePointBBoxCoder'):
        PointDecoder.from_config(bad, fcos_cfg.test_cfg)
    with pytest.raises(TypeError, match='AnchorGenerator'):
        AnchorDecoder.from_head(fcos.bbox_head)
    with pytest.raises(TypeError, match='MlvlPointGenerator'):
        PointDecoder.from_head(atss)
    # a head with heads' defaults but another third output is not read as centerness
    class OtherThird(ATSSHead):
        def forward_single(self, x, scale):
            cls_score, bbox_pred, centerness = super().forward_single(x, scale)
            return cls_score, bbox_pred, -centerness

    other = OtherThird(num_classes=3, in_channels=32, feat_channels=32, stacked_convs=1,
                       anchor_generator=ATSS_ANCHORS, test_cfg=ATSS_TEST_CFG)
    with pytest.raises(TypeError, match='3 output groups'):
        AnchorDecoder.from_head(other)
    assert other.training  # the probe forward left the head's mode alone
    with pytest.raises(ValueError, match='PAAHead'):
        AnchorDecoder.from_config(dict(ATSS_HEAD, type='mmdet.PAAHead'), ATSS_TEST_CFG)


def _checkpoint_with_spread_scores(path) -> str:
    """A seeded FCOS checkpoint whose classification and centerness layers are spread out, so
    that the untrained head's scores differ from each other (an untrained head's prior bias
    gives nearly one score everywhere)."""
    cfg = load_config(str(FCOS_CONFIG))
    init_default_scope('densekit')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    head = model.bbox_head
    with torch.no_grad():
        head.conv_cls.weight.normal_(0.0, 0.05)
        head.conv_cls.bias.copy_(torch.randn(head.conv_cls.bias.shape) - 2.0)
        head.conv_centerness.weight.normal_(0.0, 0.05)
        head.conv_reg.weight.normal_(0.0, 0.05)
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return str(path)


def test_fcos_numpy_detector_matches_mmdet_predict_on_the_export(tmp_path) -> None:
    """End to end through the FCOS CPU config exported with export_onnx: numpy_detector
    (pipeline in cv2/numpy, decoding in numpy) against densekit's onnxruntime Predictor, which
    runs mmdet's test pipeline and ``model.predict`` (FCOSHead.predict_by_feat) around the same
    graph (what ``densekit infer --backend onnxruntime`` runs), and against the PyTorch
    Predictor (mmdet's ``model.predict`` with the PyTorch network)."""
    pytest.importorskip('onnxruntime', reason='onnxruntime (the deploy extra) is not installed')
    from densekit.export import export_onnx, numpy_detector

    ckpt = _checkpoint_with_spread_scores(tmp_path / 'fcos.pth')
    report = export_onnx(str(FCOS_CONFIG), ckpt, str(tmp_path / 'fcos.onnx'))
    assert report.output_names[-4:] == ['ctr_0', 'ctr_1', 'ctr_2', 'ctr_3']
    reference = densekit.Predictor(str(FCOS_CONFIG), str(tmp_path / 'fcos.onnx'),
                                   backend='onnxruntime')
    in_torch = densekit.Predictor(str(FCOS_CONFIG), ckpt, device='cpu')
    detector = numpy_detector(str(FCOS_CONFIG), str(tmp_path / 'fcos.onnx'))
    assert isinstance(detector.decoder, PointDecoder) and detector.decoder.score_thr == 0.05
    for height, width in ((97, 131), (200, 150)):  # upscaled and downscaled to 160
        image = cv2.resize(photos.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
        want, got = reference.predict(image), detector(image)
        assert len(got['boxes']) == len(want['boxes']) >= 20
        np.testing.assert_array_equal(got['labels'], want['labels'])
        np.testing.assert_allclose(got['boxes'], want['boxes'], rtol=0, atol=BOX_TOL)
        np.testing.assert_allclose(got['scores'], want['scores'], rtol=0, atol=SCORE_TOL)
        # mmdet's model.predict all in PyTorch: the graph's outputs differ from PyTorch's
        # within export's verify bound (1e-4), so boxes (points +- distances) move by about
        # that and scores (a product of two sigmoids, slopes <= 1/4) by at most half of it;
        # near-equal scores may swap places, hence matching each detection (box and label)
        theirs = in_torch.predict(image)
        assert len(theirs['boxes']) == len(got['boxes'])
        distance = np.abs(got['boxes'][:, None] - theirs['boxes'][None]).max(-1)
        distance[got['labels'][:, None] != theirs['labels'][None]] = np.inf
        nearest = distance.argmin(1)
        matched = distance[np.arange(len(distance)), nearest] <= BOX_TOL
        assert matched.mean() >= 0.95
        np.testing.assert_allclose(got['scores'][matched], theirs['scores'][nearest[matched]],
                                   rtol=0, atol=5e-5)
    # a RetinaNet config does not fit the FCOS graph's outputs
    with pytest.raises(ValueError, match='do not fit'):
        numpy_detector(str(DET_CONFIG), str(tmp_path / 'fcos.onnx'))
