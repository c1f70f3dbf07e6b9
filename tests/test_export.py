"""``densekit export``: ONNX graphs with dynamic sizes that onnxruntime runs like PyTorch.

Every task family is exported from a CPU config, run by onnxruntime at sizes the graph was not
traced with, and compared with the PyTorch model. The bound is 1e-4, or four float32 floors
(the model in float32 against itself in float64) where the model's own float32 rounding is
larger than that. Refusals (mmcv ops, two-stage detectors, checkpoints that do not fit) leave
no file behind. RCNet, CATANet and D-Former, whose forwards used to bake sizes into the trace,
export and verify too: tests/test_export_dynamic.py.
"""
from __future__ import annotations

import sys

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from mmengine.config import Config
from torch import nn

import densekit  # noqa: F401
from densekit.blocks.fadc import FADConv
from densekit.checkpoint import CheckpointMismatchError
from densekit.cli import main
from densekit.errors import ArgumentError, MissingExtra
from densekit.export import ExportRefused, export_graph, export_onnx, require_deploy
from densekit.inference import build_model
from densekit.windowed.engine import sliding_window_inference
from tests.conftest import DET_CONFIG, REPO, SEG_CONFIG
from tests.test_inference_safety import MED_CONFIG, _save_model

SR_CONFIG = REPO / 'configs' / 'restoration' / 'fsrcnn_x2d56s12m4_1xb4-4min_photos.py'
DERAIN_CONFIG = REPO / 'configs' / 'restoration' / 'resunet_c16_1xb4-4min_photos-rain.py'
# rotation ensemble
RCLUT_CONFIG = REPO / 'configs' / 'restoration' / 'rclut_x2_1xb4-4min_photos.py'
STANDARD_DOMAINS = {'', 'ai.onnx'}


def _session(path: str) -> ort.InferenceSession:
    return ort.InferenceSession(path, providers=['CPUExecutionProvider'])


def _check_graph(path: str, spatial: int) -> None:
    model = onnx.load(path)
    onnx.checker.check_model(model)
    assert {node.domain for node in model.graph.node} <= STANDARD_DOMAINS  # standard ops only
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert len(dims) == 2 + spatial
    assert dims[0].dim_param and all(d.dim_param for d in dims[2:])  # dynamic sizes


@pytest.mark.parametrize('config', [SR_CONFIG, DERAIN_CONFIG, RCLUT_CONFIG],
                         ids=['sr', 'derain', 'rclut'])
def test_restoration_exports_with_dynamic_sizes(config, tmp_path) -> None:
    ckpt = _save_model(config, tmp_path / 'model.pth')
    out = tmp_path / 'nested' / 'model.onnx'
    report = export_onnx(str(config), ckpt, str(out), verify=True)
    assert report.verified and report.verify_shape == (1, 3, 37, 53)
    assert report.max_abs_diff <= 1e-4
    _check_graph(str(out), 2)
    model = build_model(Config.fromfile(str(config)), ckpt, 'cpu')
    session = _session(str(out))
    image = torch.rand(2, 3, 21, 30, generator=torch.Generator().manual_seed(1))
    got = session.run(None, {'input': image.numpy()})[0]
    want = model.restore(image).numpy()
    assert got.shape == want.shape == (2, 3, 21 * model.scale, 30 * model.scale)
    assert np.abs(got - want).max() <= 1e-4
    assert sorted(p.name for p in out.parent.iterdir()) == ['model.onnx']  # no temp files


def test_segmentation_export_gives_scores_at_the_input_size(tmp_path) -> None:
    ckpt = _save_model(SEG_CONFIG, tmp_path / 'seg.pth')
    report = export_onnx(str(SEG_CONFIG), ckpt, str(tmp_path / 'seg.onnx'), verify=True)
    assert report.verified and report.verify_shape == (1, 3, 97, 131)
    _check_graph(str(tmp_path / 'seg.onnx'), 2)
    scores = _session(str(tmp_path / 'seg.onnx')).run(
        None, {'input': np.random.default_rng(0).uniform(0, 255, (1, 3, 45, 62))
               .astype(np.float32)})[0]
    assert scores.shape == (1, 7, 45, 62)  # 7 classes of the shapes dataset


def test_channels_last_blocks_export_with_positive_permutations(tmp_path) -> None:
    # movedim(-1, 1) traces to a Transpose with a negative axis, which onnxruntime refuses
    config = REPO / 'configs' / 'segmentation' / \
        'fastfcn_inceptionnext-atto-jpu_aspp_1xb8-800i_shapes-128x128.py'
    ckpt = _save_model(config, tmp_path / 'm.pth')
    report = export_onnx(str(config), ckpt, str(tmp_path / 'm.onnx'), verify=True)
    assert report.verified
    perms = [list(a.ints) for n in onnx.load(str(tmp_path / 'm.onnx')).graph.node
             if n.op_type == 'Transpose' for a in n.attribute if a.name == 'perm']
    assert perms and all(min(perm) >= 0 for perm in perms)


def test_detection_exports_the_raw_head_outputs(tmp_path) -> None:
    ckpt = _save_model(DET_CONFIG, tmp_path / 'det.pth')
    report = export_onnx(str(DET_CONFIG), ckpt, str(tmp_path / 'det.onnx'), verify=True)
    assert report.verified
    assert report.output_names == [f'{kind}_{i}' for kind in ('cls', 'box') for i in range(4)]
    outputs = _session(str(tmp_path / 'det.onnx')).run(
        None, {'input': np.zeros((1, 3, 97, 131), np.float32)})
    anchors = 6  # 2 scales x 3 ratios
    assert [o.shape[1] for o in outputs] == [anchors * 6] * 4 + [anchors * 4] * 4
    assert [o.shape[2:] for o in outputs[:4]] == [(13, 17), (7, 9), (4, 5), (2, 3)]


def test_medical_window_network_driven_by_the_sliding_window(tmp_path) -> None:
    cfg = Config.fromfile(str(MED_CONFIG))
    ckpt = _save_model(cfg, tmp_path / 'med.pth')
    report = export_onnx(cfg, ckpt, str(tmp_path / 'med.onnx'), verify=True)
    assert report.verified, report.summary()
    assert report.input_shape == (1, 2, 48, 48, 48)
    _check_graph(str(tmp_path / 'med.onnx'), 3)
    model = build_model(cfg, ckpt, 'cpu')
    session = _session(str(tmp_path / 'med.onnx'))

    def onnx_windows(windows: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {'input': windows.numpy()})[0])

    volume = torch.randn(1, 2, 40, 52, 44, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = sliding_window_inference(volume, (32, 32, 32), 2, model.logits, overlap=0.5,
                                        mode='gaussian')
    got = sliding_window_inference(volume, (32, 32, 32), 2, onnx_windows, overlap=0.5,
                                   mode='gaussian')
    assert got.shape == want.shape == (1, 3, 40, 52, 44)
    assert float((got - want).abs().max()) <= report.bound
    assert torch.equal(got.argmax(1), want.argmax(1)) or \
        float((got.argmax(1) != want.argmax(1)).float().mean()) < 1e-4


def test_refusals_name_the_module_and_leave_nothing(tmp_path) -> None:
    class WithDeformable(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3), FADConv(2, 8, 8, dilation=2))

    with pytest.raises(ExportRefused, match=r'stem\.1 \(modulated deformable convolution'):
        export_graph(WithDeformable(), 'seg')
    two_stage = (REPO / 'configs' / 'detection'
                 / 'faster-rcnn_r18-half_fpn_1xb8-1500i_shapes-160x160.py')
    ckpt = _save_model(two_stage, tmp_path / 'frcnn.pth')
    with pytest.raises(ExportRefused, match=r'roi_head\.bbox_roi_extractor\.roi_layers\.0 '
                                            r'\(RoIAlign is an mmcv compiled op\)'):
        export_onnx(str(two_stage), ckpt, str(tmp_path / 'frcnn.onnx'))
    wrong = _save_model(SEG_CONFIG, tmp_path / 'seg.pth')
    with pytest.raises(CheckpointMismatchError):
        export_onnx(str(SR_CONFIG), wrong, str(tmp_path / 'sr.onnx'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['frcnn.pth', 'seg.pth']


def test_bad_arguments_and_missing_extra(tmp_path, monkeypatch) -> None:
    ckpt = _save_model(SR_CONFIG, tmp_path / 'sr.pth')
    with pytest.raises(ArgumentError, match="out must be a path ending in .onnx, got 'x.pt'"):
        export_onnx(str(SR_CONFIG), ckpt, 'x.pt')
    with pytest.raises(ArgumentError, match='opset must be an int in 11-23, got 7'):
        export_onnx(str(SR_CONFIG), ckpt, str(tmp_path / 'a.onnx'), opset=7)
    with pytest.raises(ArgumentError, match=r"shape must be 2 positive sizes for task 'sr', "
                                            r'got \(8, 8, 8\)'):
        export_onnx(str(SR_CONFIG), ckpt, str(tmp_path / 'a.onnx'), shape=(8, 8, 8))
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)
    with pytest.raises(MissingExtra, match=r'pip install "densekit\[deploy\]"'):
        require_deploy('onnxruntime')
    assert not (tmp_path / 'a.onnx').exists()


def test_cli_export_verify_and_static(tmp_path, capsys) -> None:
    ckpt = _save_model(SR_CONFIG, tmp_path / 'sr.pth')
    out = tmp_path / 'sr.onnx'
    assert main(['export', str(SR_CONFIG), ckpt, '--out', str(out), '--verify']) == 0
    printed = capsys.readouterr().out
    assert 'verify at (1, 3, 37, 53): max |onnxruntime - pytorch| = ' in printed
    assert printed.rstrip().endswith(': OK')
    assert main(['export', str(SR_CONFIG), ckpt, '--out', str(tmp_path / 's.onnx'),
                 '--static', '--shape', '24', '40']) == 0
    dims = onnx.load(str(tmp_path / 's.onnx')).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 24, 40]
    assert main(['export', str(SR_CONFIG), ckpt, '--out', 'model.pt']) == 2
    assert 'densekit export: error: out must be a path ending in .onnx' in capsys.readouterr().err


# --- the onnxruntime backend: the same pre- and post-processing around the exported graph --

def test_onnxruntime_backend_matches_pytorch_for_restoration(tmp_path) -> None:
    ckpt = _save_model(SR_CONFIG, tmp_path / 'sr.pth')
    export_onnx(str(SR_CONFIG), ckpt, str(tmp_path / 'sr.onnx'))
    torch_side = densekit.Predictor(str(SR_CONFIG), ckpt, device='cpu')
    onnx_side = densekit.Predictor(str(SR_CONFIG), str(tmp_path / 'sr.onnx'),
                                   backend='onnxruntime')
    image = np.random.default_rng(3).random((45, 61, 3)).astype(np.float32)
    got, want = onnx_side.predict(image), torch_side.predict(image)
    assert got.shape == want.shape == (90, 122, 3) and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-4
    pixels = (image * 255).round().astype(np.uint8)
    assert np.abs(onnx_side.predict(pixels).astype(int)
                  - torch_side.predict(pixels).astype(int)).max() <= 1  # rounding at .5
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), pixels)
    assert main(['infer', str(SR_CONFIG), str(tmp_path / 'sr.onnx'), str(folder / 'a.png'),
                 '--out', str(tmp_path / 'out'), '--backend', 'onnxruntime']) == 0
    assert (tmp_path / 'out' / 'a_x2.png').is_file()


def test_onnxruntime_backend_matches_pytorch_for_segmentation_and_medical(tmp_path) -> None:
    meta = dict(dataset_meta=dict(classes=tuple('abcdefg')))
    ckpt = _save_model(SEG_CONFIG, tmp_path / 'seg.pth', meta=meta)
    export_onnx(str(SEG_CONFIG), ckpt, str(tmp_path / 'seg.onnx'))
    image = np.random.default_rng(4).integers(0, 256, (53, 70, 3), dtype=np.uint8)
    want = densekit.Predictor(str(SEG_CONFIG), ckpt, device='cpu').predict(image)
    onnx_seg = densekit.Predictor(str(SEG_CONFIG), str(tmp_path / 'seg.onnx'),
                                  backend='onnxruntime')
    assert onnx_seg.model.dataset_meta['classes'] == list('abcdefg')  # from the file
    assert (onnx_seg.predict(image) == want).mean() > 0.999
    cfg = Config.fromfile(str(MED_CONFIG))
    cfg.model.test_cfg.roi_size = (32, 32, 32)
    med_ckpt = _save_model(cfg, tmp_path / 'med.pth')
    export_onnx(cfg, med_ckpt, str(tmp_path / 'med.onnx'))
    volume = np.random.default_rng(5).normal(size=(2, 30, 37, 33)).astype(np.float32)
    labels = densekit.Predictor(cfg, med_ckpt, device='cpu').predict(volume)
    onnx_labels = densekit.Predictor(cfg, str(tmp_path / 'med.onnx'),
                                     backend='onnxruntime').predict(volume)
    assert onnx_labels.shape == labels.shape == (30, 37, 33)
    assert (onnx_labels == labels).mean() > 0.999
    with pytest.raises(ValueError, match="exported from a 'seg' config, but the config is "
                                         "'medical'"):
        densekit.Predictor(cfg, str(tmp_path / 'seg.onnx'), backend='onnxruntime')
    with pytest.raises(ValueError, match='takes the .onnx file'):
        densekit.Predictor(cfg, med_ckpt, backend='onnxruntime')


def test_onnxruntime_backend_detection_keeps_mmdet_decoding(tmp_path) -> None:
    ckpt = _save_model(DET_CONFIG, tmp_path / 'det.pth')
    export_onnx(str(DET_CONFIG), ckpt, str(tmp_path / 'det.onnx'))
    keep = {'model.test_cfg.score_thr': 0.0}
    torch_side = densekit.Predictor(str(DET_CONFIG), ckpt, device='cpu', cfg_options=keep)
    onnx_side = densekit.Predictor(str(DET_CONFIG), str(tmp_path / 'det.onnx'),
                                   backend='onnxruntime', cfg_options=keep)
    image = np.random.default_rng(6).integers(0, 256, (97, 131, 3), dtype=np.uint8)
    want, got = torch_side.predict(image), onnx_side.predict(image)
    assert len(got['boxes']) == len(want['boxes']) == 100
    # the raw outputs agree within 1e-4, so the same boxes come out; near-equal scores of an
    # untrained head may swap places in the ranking, hence matching instead of zipping
    # (an anchor may give one box per class: a detection is a box and a label)
    distance = np.abs(got['boxes'][:, None] - want['boxes'][None]).max(-1)
    distance[got['labels'][:, None] != want['labels'][None]] = np.inf
    nearest = distance.argmin(1)
    matched = distance[np.arange(100), nearest] <= 1e-3
    assert matched.mean() >= 0.95
    np.testing.assert_allclose(got['scores'][matched], want['scores'][nearest[matched]],
                               atol=1e-5)
