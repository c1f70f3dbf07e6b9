"""``densekit infer`` on NIfTI: geometry back to the input grid, header, channels, bad files."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import densekit  # noqa: F401
from densekit.inference import infer
from densekit.tasks.medical3d import MedicalSegmentor, generate_phantoms
from tests.conftest import REPO

CONFIG = REPO / 'configs' / 'medical3d' / 'resunet-tiny_1xb2-600i_phantoms-48x48x48.py'


def _checkpoint(cfg: Config, path, channel_names) -> str:
    init_default_scope('densekit')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    meta = dict(dataset_meta=dict(classes=('background', 'organ', 'lesion'),
                                  channel_names=tuple(channel_names)))
    torch.save(dict(state_dict=model.state_dict(), meta=meta), path)
    return str(path)


@pytest.fixture(scope='module')
def phantoms(tmp_path_factory):
    return generate_phantoms(tmp_path_factory.mktemp('ph'), num_train=1, num_val=0,
                             num_test=1, fov_mm=(40.0, 56.0, 56.0))


@pytest.mark.parametrize('spacing', [None, (2.0, 2.0, 2.0)])
def test_labels_come_back_on_the_input_grid(phantoms, tmp_path, monkeypatch, spacing):
    """An oracle 'network' reads the labels from the image; the written file must equal them."""
    truth_path = phantoms / 'labelsTs' / 'phantom_001.nii.gz'
    truth = nib.load(truth_path)
    labels = np.asarray(truth.dataobj)
    inputs = tmp_path / 'in'
    inputs.mkdir()
    nib.save(nib.Nifti1Image(labels.astype(np.float32) * 1000, truth.affine, truth.header),
             inputs / 'case_0000.nii.gz')
    (inputs / 'broken_0000.nii.gz').write_bytes(b'\x1f\x8b truncated')
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.backbone.in_channels = 1
    cfg.preprocessing = dict(target_spacing=spacing)
    ckpt = _checkpoint(cfg, tmp_path / 'model.pth', ['noNorm'])

    def oracle(self, volume, labels=True):
        return torch.round(volume[0] / 1000).to(torch.uint8)

    monkeypatch.setattr(MedicalSegmentor, 'predict_volume', oracle)
    summary = infer(cfg, ckpt, [str(inputs)], str(tmp_path / 'out'), device='cpu')
    assert list(summary.failed) == [str(inputs / 'broken_0000.nii.gz')]
    out = nib.load(summary.written[0])
    assert summary.written[0].endswith('case_seg.nii.gz')
    assert out.get_data_dtype() == np.uint8 and np.allclose(out.affine, truth.affine)
    assert out.shape == truth.shape
    agreement = (np.asarray(out.dataobj) == labels).mean()
    assert agreement == 1.0 if spacing is None else agreement > 0.97


def test_multichannel_case_and_nan_input(phantoms, tmp_path):
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.test_cfg.roi_size = (16, 16, 16)
    ckpt = _checkpoint(cfg, tmp_path / 'model.pth', ['T2', 'T1'])
    folder = phantoms / 'imagesTs'
    summary = infer(cfg, ckpt, [str(folder)], str(tmp_path / 'out'), device='cpu')
    assert not summary.failed and len(summary.written) == 1  # _0000 and _0001: one case
    src = nib.load(folder / 'phantom_001_0000.nii.gz')
    out = nib.load(summary.written[0])
    assert out.shape == src.shape and np.allclose(out.affine, src.affine)
    assert set(np.unique(np.asarray(out.dataobj))) <= {0, 1, 2}
    bad = tmp_path / 'bad'
    bad.mkdir()
    data = src.get_fdata(dtype=np.float32)
    data[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, src.affine), bad / 'x_0000.nii.gz')
    nib.save(nib.Nifti1Image(data * 0, src.affine), bad / 'x_0001.nii.gz')
    summary = infer(cfg, ckpt, [str(bad)], str(tmp_path / 'out2'), device='cpu')
    assert summary.failed[str(bad / 'x_0000.nii.gz')].startswith('1 NaN or infinite voxels')


def test_demo_stage_is_registered_last():
    from densekit.demo import STAGES

    assert list(STAGES)[-1] == 'medical' and STAGES['medical'].__name__ == 'stage_medical'
