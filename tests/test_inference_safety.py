"""``densekit infer`` / ``test`` / ``--resume`` never lose data, never mislead, and say why.

Each test reproduces one way a new user lost data or got a misleading result: inputs
overwritten by outputs, outputs colliding, checkpoints that do not fit loading with a warning,
truncated images predicted as if whole, one bad file stopping the run, exit status 0 after
failures, a 4D time series read as channels, and files that are not checkpoints at all.
"""
from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from nibabel.testing import data_path as nibabel_data
from skimage import data as photos

import densekit  # noqa: F401
from densekit.checkpoint import (
    CheckpointMismatchError,
    NotACheckpointError,
    UnsafeCheckpointError,
    load_weights,
    safe_load,
)
from densekit.cli import main
from densekit.inference import InferOptions, RunRefused, infer
from tests.conftest import DET_CONFIG, REPO, SEG_CONFIG

SR_CONFIG = REPO / 'configs' / 'restoration' / 'edsr_x2c32b8_1xb4-4min_photos.py'
MED_CONFIG = REPO / 'configs' / 'medical3d' / 'resunet-tiny_1xb2-600i_phantoms-48x48x48.py'


def _save_model(config: Path | Config, path: Path, meta: dict | None = None,
                wrap: bool = True, **model_changes) -> str:
    cfg = config if isinstance(config, Config) else Config.fromfile(str(config))
    init_default_scope(cfg.get('default_scope', 'densekit'))
    for key, value in model_changes.items():
        node = cfg.model
        *parents, last = key.split('.')
        for part in parents:
            node = node[part]
        node[last] = value
    torch.manual_seed(0)
    state = MODELS.build(cfg.model).state_dict()
    torch.save(dict(state_dict=state, meta=meta or {}) if wrap else state, path)
    return str(path)


@pytest.fixture(scope='module')
def seg_ckpt(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _save_model(SEG_CONFIG, tmp_path_factory.mktemp('seg') / 'seg.pth')


@pytest.fixture(scope='module')
def sr_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp('sr')
    config = folder / 'tiny_sr.py'
    config.write_text(f"_base_ = ['{SR_CONFIG}']\n"
                      'model = dict(backbone=dict(channels=8, num_blocks=1), '
                      'head=dict(in_channels=8))\n')
    return str(config), _save_model(Config.fromfile(str(config)), folder / 'sr.pth')


def _write_photo(path: Path, name: str, size: int = 48) -> Path:
    rgb = getattr(photos, name)()[..., :3]
    bgr = cv2.resize(np.ascontiguousarray(rgb[..., ::-1]), (size + 5, size))
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), bgr)
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob('*') if p.is_file()}


# --- 1. inputs are never overwritten -------------------------------------------------------

def test_sr_output_named_like_another_input_is_refused_up_front(sr_setup, tmp_path) -> None:
    config, ckpt = sr_setup
    d = tmp_path / 'd'
    _write_photo(d / 'cat.png', 'chelsea')
    _write_photo(d / 'cat_x2.png', 'astronaut')
    before = _snapshot(d)
    with pytest.raises(RunRefused, match=r'cat_x2\.png is the input .*cat_x2\.png'):
        infer(config, ckpt, [str(d)], str(d), device='cpu')
    assert _snapshot(d) == before  # nothing written, nothing replaced
    # through the command: one line, exit status 2, still nothing written
    assert main(['infer', config, ckpt, str(d), '--out', str(d)]) == 2
    assert _snapshot(d) == before


def test_seg_label_output_named_like_another_input_is_refused(seg_ckpt, tmp_path,
                                                              capsys) -> None:
    d = tmp_path / 'd'
    _write_photo(d / 'cat.png', 'chelsea')
    _write_photo(d / 'cat_label.png', 'astronaut')
    before = _snapshot(d)
    assert main(['infer', str(SEG_CONFIG), seg_ckpt, str(d), '--out', str(d)]) == 2
    err = capsys.readouterr().err
    assert 'cat_label.png is the input' in err and 'nothing was written' in err
    assert len(err.strip().splitlines()) == 1
    assert _snapshot(d) == before


# --- 2. outputs never collide --------------------------------------------------------------

def test_same_stem_in_one_folder_is_refused_with_the_list(seg_ckpt, tmp_path) -> None:
    _write_photo(tmp_path / 'a' / 'photo.png', 'chelsea')
    _write_photo(tmp_path / 'a' / 'photo.jpg', 'coffee')
    _write_photo(tmp_path / 'b' / 'photo.png', 'astronaut')
    out = tmp_path / 'out'
    with pytest.raises(RunRefused, match=r'photo_label\.png <- .*a/photo\.jpg, .*a/photo\.png'):
        infer(str(SEG_CONFIG), seg_ckpt, [str(tmp_path / 'a'), str(tmp_path / 'b')], str(out),
              device='cpu')
    assert not out.exists()


def test_same_name_in_two_folders_keeps_the_folders(seg_ckpt, tmp_path) -> None:
    _write_photo(tmp_path / 'in' / 'a' / 'photo.png', 'chelsea')
    _write_photo(tmp_path / 'in' / 'b' / 'photo.png', 'astronaut')
    out = tmp_path / 'out'
    summary = infer(str(SEG_CONFIG), seg_ckpt, [str(tmp_path / 'in' / '*' / '*.png')],
                    str(out), device='cpu')
    assert summary.ok and len(summary.predicted) == 2
    written = sorted(str(Path(p).relative_to(out)) for p in summary.written)
    assert written == ['a/photo_label.png', 'a/photo_overlay.png',
                       'b/photo_label.png', 'b/photo_overlay.png']
    assert all(Path(p).is_file() for p in summary.written)
    a = cv2.imread(str(out / 'a' / 'photo_overlay.png'))
    b = cv2.imread(str(out / 'b' / 'photo_overlay.png'))
    assert a.shape == b.shape and not np.array_equal(a, b)  # two pictures, two outputs


# --- 3. checkpoints that do not fit are errors ---------------------------------------------

def test_checkpoint_with_other_class_count_is_refused(tmp_path, capsys) -> None:
    ckpt = _save_model(SEG_CONFIG, tmp_path / 'five.pth', **{'decode_head.num_classes': 5})
    image = _write_photo(tmp_path / 'in' / 'cat.png', 'chelsea')
    with pytest.raises(CheckpointMismatchError) as info:
        infer(str(SEG_CONFIG), ckpt, [str(image)], str(tmp_path / 'out'), device='cpu')
    message = str(info.value)
    assert 'five.pth' in message and SEG_CONFIG.name in message
    assert 'decode_head.conv_seg.weight: checkpoint (5, ' in message
    assert 'with a different shape' in message
    assert not (tmp_path / 'out').exists()
    # the explicit way out: same list as a warning, then the run goes on
    with pytest.warns(UserWarning, match='conv_seg.weight'):
        summary = infer(str(SEG_CONFIG), ckpt, [str(image)], str(tmp_path / 'out'),
                        device='cpu', strict=False)
    assert summary.ok and len(summary.written) == 2
    assert main(['infer', str(SEG_CONFIG), ckpt, str(image), '--out',
                 str(tmp_path / 'out2')]) == 2
    assert 'does not fit the model' in capsys.readouterr().err


def test_detection_checkpoint_in_segmentation_config_lists_keys(tmp_path) -> None:
    ckpt = _save_model(DET_CONFIG, tmp_path / 'det.pth')
    model = MODELS.build(Config.fromfile(str(SEG_CONFIG)).model)
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(model, ckpt, config=str(SEG_CONFIG))
    message = str(info.value)
    assert re.search(r'\d+ key\(s\) missing from the checkpoint: backbone\.stem', message)
    assert re.search(r'\d+ key\(s\) unexpected \(not in the model\): backbone\.conv1', message)
    assert 'bbox_head.cls_convs' in message and 'decode_head' not in message.split('(pass')[1]
    assert message.count('... and ') == 3  # first 10 keys of each kind, then a count


def test_segmentation_checkpoint_in_sr_config_is_refused(sr_setup, seg_ckpt, tmp_path) -> None:
    config, _ = sr_setup
    image = _write_photo(tmp_path / 'cat.png', 'chelsea')
    with pytest.raises(CheckpointMismatchError, match='missing from the checkpoint: backbone'):
        infer(config, seg_ckpt, [str(image)], str(tmp_path / 'out'), device='cpu')


def test_test_and_resume_load_strictly(tmp_path, shapes_root) -> None:
    from densekit import apis
    from tests.conftest import tiny_seg_options
    ckpt = _save_model(SEG_CONFIG, tmp_path / 'five.pth', **{'decode_head.num_classes': 5})
    options = apis.parse_cfg_options(tiny_seg_options(shapes_root, max_iters=2, interval=2))
    with pytest.raises(CheckpointMismatchError, match='cannot load checkpoint'):
        apis.test(str(SEG_CONFIG), ckpt, work_dir=str(tmp_path / 't'), cfg_options=options)
    with pytest.raises(CheckpointMismatchError, match='cannot resume from'):
        apis.train(str(SEG_CONFIG), work_dir=str(tmp_path / 'r'), resume=ckpt,
                   cfg_options=options)


# --- 4. checkpoints without class colours --------------------------------------------------

@pytest.mark.parametrize('wrap', [True, False], ids=['state_dict', 'bare'])
def test_segmentation_without_palette_in_meta(tmp_path, wrap) -> None:
    ckpt = _save_model(SEG_CONFIG, tmp_path / 'plain.pth', wrap=wrap)
    images = [_write_photo(tmp_path / 'in' / f'{n}.png', n) for n in ('chelsea', 'coffee')]
    summary = infer(str(SEG_CONFIG), ckpt, [str(p) for p in images], str(tmp_path / 'out'),
                    device='cpu')
    assert summary.ok and len(summary.predicted) == 2
    label = cv2.imread(str(tmp_path / 'out' / 'chelsea_label.png'), cv2.IMREAD_UNCHANGED)
    assert label.dtype == np.uint8 and label.shape == (48, 53)


# --- 5-7. truncated files, any exception is one input's failure, exit status ---------------

def _truncated_jpeg(path: Path) -> Path:
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(photos.astronaut(), cv2.COLOR_RGB2BGR))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes()[: len(buf) // 2])
    return path


@pytest.mark.parametrize('config', [SEG_CONFIG, DET_CONFIG], ids=['seg', 'det'])
def test_truncated_jpeg_is_a_failure_and_the_run_goes_on(tmp_path, capsys, config) -> None:
    ckpt = _save_model(config, tmp_path / 'model.pth')
    folder = tmp_path / 'in'
    _truncated_jpeg(folder / 'half.jpg')
    _write_photo(folder / 'whole.png', 'coffee', size=64)
    status = main(['infer', str(config), ckpt, str(folder), '--out', str(tmp_path / 'out')])
    out = capsys.readouterr().out
    assert status == 1
    assert 'half.jpg: truncated or corrupt image' in out
    assert out.strip().splitlines()[-1].startswith('FAILED: 1 of 2 inputs failed')
    assert not any((tmp_path / 'out').glob('half*'))
    assert len(list((tmp_path / 'out').glob('whole*'))) == 2


def test_float_tiff_is_unsupported_not_corrupt(seg_ckpt, tmp_path) -> None:
    from PIL import Image
    path = tmp_path / 'in' / 'float.tif'
    path.parent.mkdir()
    Image.fromarray(np.linspace(0, 1, 48 * 53, dtype=np.float32).reshape(48, 53)).save(path)
    summary = infer(str(SEG_CONFIG), seg_ckpt, [str(path)], str(tmp_path / 'out'), device='cpu')
    assert summary.failed[str(path)] == 'unsupported pixel type float32 (8- or 16-bit images only)'


def test_every_input_failing_leaves_no_output_folder(seg_ckpt, tmp_path) -> None:
    folder = tmp_path / 'in'
    folder.mkdir()
    (folder / 'text.png').write_text('not an image')
    _truncated_jpeg(folder / 'cut.jpg')
    out = tmp_path / 'out' / 'nested'
    summary = infer(str(SEG_CONFIG), seg_ckpt, [str(folder), str(tmp_path / 'nope*.png')],
                    str(out), device='cpu')
    assert not summary.ok and sorted(summary.failed) == [str(folder / 'cut.jpg'),
                                                         str(folder / 'text.png')]
    assert list(summary.missing) == [str(tmp_path / 'nope*.png')]
    assert not (tmp_path / 'out').exists()


def test_skip_existing_and_batches_equal_single_inputs(seg_ckpt, tmp_path) -> None:
    images = [str(_write_photo(tmp_path / 'in' / f'{n}.png', n))
              for n in ('chelsea', 'coffee', 'astronaut')]
    one = infer(str(SEG_CONFIG), seg_ckpt, images, str(tmp_path / 'one'), device='cpu')
    batched = infer(str(SEG_CONFIG), seg_ckpt, images, str(tmp_path / 'three'), device='cpu',
                    options=InferOptions(batch_size=3))
    assert one.ok and batched.ok
    for name in ('chelsea', 'coffee', 'astronaut'):
        a = cv2.imread(str(tmp_path / 'one' / f'{name}_label.png'), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(tmp_path / 'three' / f'{name}_label.png'), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(a, b)  # same-size images: no padding in the batch
    (tmp_path / 'one' / 'coffee_overlay.png').unlink()
    again = infer(str(SEG_CONFIG), seg_ckpt, images, str(tmp_path / 'one'), device='cpu',
                  options=InferOptions(skip_existing=True))
    assert sorted(Path(p).name for p in again.skipped) == ['astronaut.png', 'chelsea.png']
    assert [Path(p).name for p in again.predicted] == ['coffee.png']


# --- 6, 8. medical: any exception is one case's failure; 4D time series --------------------

@pytest.fixture(scope='module')
def med_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, str]:
    cfg = Config.fromfile(str(MED_CONFIG))
    cfg.model.backbone.in_channels = 2
    cfg.model.test_cfg.roi_size = (16, 16, 16)
    meta = dict(dataset_meta=dict(classes=('background', 'organ', 'lesion'),
                                  channel_names=('T2', 'T1')))
    return cfg, _save_model(cfg, tmp_path_factory.mktemp('med') / 'med.pth', meta=meta)


def _singular_affine_case(path: Path) -> None:
    plain = path.with_name('plain.nii')
    data = np.random.default_rng(0).random((12, 12, 12, 2)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), plain)
    raw = bytearray(plain.read_bytes())
    struct.pack_into('<hh', raw, 252, 0, 1)  # qform_code 0, sform_code 1 ...
    struct.pack_into('<12f', raw, 280, *([0.0] * 12))  # ... with an all-zero sform
    plain.unlink()
    path.write_bytes(bytes(raw))


def test_time_series_is_not_read_as_channels(med_ckpt, tmp_path) -> None:
    cfg, ckpt = med_ckpt
    series = Path(nibabel_data) / 'example4d.nii.gz'
    summary = infer(cfg, ckpt, [str(series)], str(tmp_path / 'out'), device='cpu')
    reason = summary.failed[str(series)]
    assert 'shape (128, 96, 24, 2) has a 4th axis that is not marked as channels' in reason
    assert 'the model expects 2 channel(s): T2, T1' in reason
    assert not (tmp_path / 'out').exists()


def test_channel_axis_and_per_case_counts_and_singular_affine(med_ckpt, tmp_path) -> None:
    cfg, ckpt = med_ckpt
    src = nib.load(Path(nibabel_data) / 'example4d.nii.gz')
    folder = tmp_path / 'in'
    folder.mkdir()
    crop = np.asarray(src.dataobj)[40:60, 30:50, 4:20].astype(np.float32)
    nib.save(nib.Nifti1Image(crop, src.affine), folder / 'series.nii.gz')
    for c in range(2):  # a two-file case: one input, not two
        nib.save(nib.Nifti1Image(crop[..., c], src.affine), folder / f'case_{c:04d}.nii.gz')
    _singular_affine_case(folder / 'singular_0000.nii')
    summary = infer(cfg, ckpt, [str(folder)], str(tmp_path / 'out'), device='cpu',
                    options=InferOptions(channel_axis=3, progress=False))
    assert sorted(Path(p).name for p in summary.inputs) == [
        'case_0000.nii.gz', 'series.nii.gz', 'singular_0000.nii']
    assert sorted(Path(p).name for p in summary.predicted) == ['case_0000.nii.gz',
                                                               'series.nii.gz']
    assert 'OrientationError' in summary.failed[str(folder / 'singular_0000.nii')] or \
        'orientation' in summary.failed[str(folder / 'singular_0000.nii')].lower()
    out = nib.load(tmp_path / 'out' / 'series_seg.nii.gz')
    assert out.shape == crop.shape[:3] and np.allclose(out.affine, src.affine)
    a = np.asarray(out.dataobj)
    b = np.asarray(nib.load(tmp_path / 'out' / 'case_seg.nii.gz').dataobj)
    np.testing.assert_array_equal(a, b)  # one 4D file == the same channels as two files


# --- bad checkpoint files and bad options: one clear line ----------------------------------

@pytest.mark.parametrize('content, expected', [
    (b'', 'the file is empty'),
    (b'hello, these are my notes\n', 'it is a text file'),
    (None, 'Python source file (a config?)'),
    (b'PK\x03\x04' + b'\x00' * 40, 'truncated or damaged zip archive'),
], ids=['empty', 'text', 'config', 'truncated-zip'])
def test_files_that_are_not_checkpoints(tmp_path, content, expected) -> None:
    path = tmp_path / 'model.pth'
    path.write_bytes(SEG_CONFIG.read_bytes() if content is None else content)
    with pytest.raises(NotACheckpointError, match='is not a PyTorch checkpoint') as info:
        safe_load(str(path))
    assert expected in str(info.value) and 'model.pth' in str(info.value)
    assert not isinstance(info.value, UnsafeCheckpointError)


def test_truncated_real_checkpoint(seg_ckpt, tmp_path) -> None:
    data = Path(seg_ckpt).read_bytes()
    path = tmp_path / 'cut.pth'
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(NotACheckpointError, match='truncated or damaged zip'):
        safe_load(str(path))


def test_config_as_checkpoint_on_the_command_line(tmp_path, capsys) -> None:
    image = _write_photo(tmp_path / 'cat.png', 'chelsea')
    status = main(['infer', str(SEG_CONFIG), str(SEG_CONFIG), str(image), '--out',
                   str(tmp_path / 'out')])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert 'is not a PyTorch checkpoint: it is a Python source file' in err[0]


def test_bad_cfg_options_are_one_line(seg_ckpt, tmp_path, capsys) -> None:
    image = str(_write_photo(tmp_path / 'cat.png', 'chelsea'))
    with pytest.raises(SystemExit) as info:
        main(['infer', str(SEG_CONFIG), seg_ckpt, image, '--out', str(tmp_path / 'o'),
              '--cfg-options', 'model.decode_head.num_classes'])
    assert info.value.code == 2
    assert "'model.decode_head.num_classes' is not KEY=VALUE" in capsys.readouterr().err
    status = main(['infer', str(SEG_CONFIG), seg_ckpt, image, '--out', str(tmp_path / 'o'),
                   '--cfg-options', 'model.decode_head.num_classes=seven'])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert 'model.decode_head.num_classes=seven: expected an integer' in err[0]
    with pytest.raises(ValueError, match='expected an integer'):  # --debug: the real exception
        main(['--debug', 'infer', str(SEG_CONFIG), seg_ckpt, image, '--out',
              str(tmp_path / 'o'), '--cfg-options', 'model.decode_head.num_classes=seven'])


def test_version_and_help_do_not_load_the_benchmarks() -> None:
    code = ('import sys; from densekit.cli import main\n'
            'try:\n    main(["--help"])\nexcept SystemExit:\n    pass\n'
            "print(sorted(m for m in sys.modules if m.startswith(('densekit', 'benchmarks')) "
            "and 'bench' in m))")
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    assert 'infer' in res.stdout and res.stdout.strip().splitlines()[-1] == '[]'
    res = subprocess.run([sys.executable, '-m', 'densekit.cli', '--version'],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == f'densekit {densekit.__version__}'


def test_demo_tasks_match_the_demo_stages() -> None:
    from densekit.cli import DEMO_TASKS
    from densekit.demo import STAGES
    assert tuple(STAGES) == DEMO_TASKS


def test_out_of_memory_stops_the_run_but_other_errors_do_not(seg_ckpt, tmp_path) -> None:
    """A KeyError from one input is that input's failure; a MemoryError stops the run."""
    from densekit.inference import HANDLERS, register_handler

    def probe(cfg, model, options):
        handler = HANDLERS['seg'](cfg, model, options)
        plain = handler.predict

        def predict(items):
            name = Path(items[0]['img_path']).stem
            if name == 'keyerror':
                raise KeyError('lookup failed inside the model')
            if name == 'memory':
                raise MemoryError('cannot allocate 9 GiB')
            return plain(items)

        handler.predict = predict
        return handler

    register_handler('seg-probe', probe)
    try:
        cfg = Config.fromfile(str(SEG_CONFIG))
        cfg.task = 'seg-probe'
        folder = tmp_path / 'in'
        for name in ('a_ok', 'keyerror', 'z_ok'):
            _write_photo(folder / f'{name}.png', 'coffee')
        summary = infer(cfg, seg_ckpt, [str(folder)], str(tmp_path / 'out'), device='cpu')
        assert summary.failed == {str(folder / 'keyerror.png'):
                                  "KeyError: 'lookup failed inside the model'"}
        assert len(summary.predicted) == 2
        _write_photo(folder / 'memory.png', 'coffee')
        with pytest.raises(MemoryError):
            infer(cfg, seg_ckpt, [str(folder)], str(tmp_path / 'out2'), device='cpu')
    finally:
        HANDLERS.pop('seg-probe')
