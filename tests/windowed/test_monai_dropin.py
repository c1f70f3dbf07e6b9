"""densekit's sliding_window_inference as a drop-in for MONAI's: the situations MONAI's own test
file for that function covers (1D to 4D windows, dtypes, window batches, stateful predictors,
padding values, positional arguments, several outputs, conditions, batched MetaTensors, numpy
window sizes, shape errors), each compared with MONAI's result on the same call."""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from densekit.tasks.medical3d import sliding_window_inference
from densekit.windowed.batching import independent_samples

monai_inferers = pytest.importorskip('monai.inferers')
monai_data = pytest.importorskip('monai.data')
warnings.filterwarnings('ignore', category=UserWarning)


def _both(*args, **kwargs):
    """densekit's and MONAI's result of the same call (MONAI's as a plain tensor / structure)."""
    ours = sliding_window_inference(*args, **kwargs)
    with torch.no_grad() if not args[0].requires_grad else torch.enable_grad():
        theirs = monai_inferers.sliding_window_inference(*args, **kwargs)
    return ours, theirs


def _close(ours, theirs, atol: float = 1e-5) -> None:
    if isinstance(theirs, dict):
        assert sorted(ours) == sorted(theirs)
        for key in theirs:
            _close(ours[key], theirs[key], atol)
        return
    if isinstance(theirs, (tuple, list)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _close(a, b, atol)
        return
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    assert ours.device == theirs.device
    torch.testing.assert_close(torch.as_tensor(ours).detach(), torch.as_tensor(theirs).detach(),
                               atol=atol, rtol=1e-6)


# image shape, roi, sw_batch_size, overlap, mode: 1D, 2D, 3D and 4D windows, rois larger than
# the image, -1 (full axis) and 1-pixel rois, batches of 1 to 5 images
GRID_CASES = [
    ((2, 3, 16), (4,), 3, 0.25, 'constant'),
    ((2, 3, 16, 15, 7, 9), 4, 3, 0.25, 'constant'),
    ((1, 3, 16, 15, 7), (4, -1, 7), 3, 0.25, 'constant'),
    ((3, 3, 16, 15, 7), (4, -1, 7), 3, 0.25, 'constant'),
    ((1, 3, 16, 15, 7), (20, 22, 23), 10, 0.25, 'constant'),
    ((2, 3, 15, 7), (2, 6), 1000, 0.25, 'constant'),
    ((1, 3, 16, 7), (80, 50), 7, 0.25, 'constant'),
    ((1, 3, 16, 15, 7), (20, 22, 23), 10, 0.5, 'constant'),
    ((1, 3, 16, 7), (80, 50), 7, 0.5, 'gaussian'),
    ((3, 3, 16, 15, 7), (4, 10, 7), 3, 0.25, 'gaussian'),
    ((5, 3, 16, 15, 7), (4, 1, 7), 3, 0.25, 'constant'),
]


@pytest.mark.parametrize('shape,roi,sw,overlap,mode', GRID_CASES)
def test_identity_like_predictors_match_monai_on_every_window_grid(shape, roi, sw, overlap,
                                                                    mode):
    x = torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape)
    ours, theirs = _both(x, roi, sw, lambda w: w + 1, overlap, mode=mode)
    _close(ours, theirs, atol=1e-3)  # values up to 1e4: float32 blending rounding
    torch.testing.assert_close(ours, x + 1)  # and both are the exact answer


# image shape, roi, overlap, sw_batch_size (MONAI's buffered-mode grid, small sizes only)
BUFFER_GRID = [
    ((2, 3, 10, 11), (7, 10), 0.8, 5),
    ((2, 3, 10, 11), (15, 12), 0.0, 2),
    ((2, 3, 511, 237), (96, 80), 0.4, 5),
    ((2, 3, 10, 11, 12), (7, 8, 10), 0.2, 2),
]


@pytest.mark.parametrize('case,buffer_steps,buffer_dim',
                         [(c, s, d) for c in BUFFER_GRID for s, d in ((1, -1), (3, 0), (4, 1))])
def test_buffer_arguments_and_float64_inputs_match_monai(case, buffer_steps, buffer_dim):
    shape, roi, overlap, sw = case
    dtype = torch.float64 if roi[0] % 2 else torch.float32
    mode = 'gaussian' if shape[1] % 2 else 'constant'
    x = torch.randint(0, 255, shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    ours, theirs = _both(x, roi, sw, lambda w: 2.0 * w, overlap, mode=mode,
                         buffer_steps=buffer_steps, buffer_dim=buffer_dim)
    assert ours.dtype == dtype
    _close(ours, theirs, atol=1e-3)


class _Counter:
    """A stateful predictor: each call adds one more than the last (MONAI's sigma test)."""

    def __init__(self) -> None:
        self.add = 1

    def __call__(self, data: torch.Tensor) -> torch.Tensor:
        self.add += 1
        return data + self.add


class _CountingNet(nn.Module):
    """The same state inside an nn.Module in eval mode: no automatic split may change it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x) + self.calls


@pytest.mark.parametrize('mode', ['constant', 'gaussian'])
def test_stateful_predictors_see_the_same_calls_as_with_monai(mode):
    x = torch.ones(1, 1, 7, 7)
    kwargs = dict(overlap=0.5, padding_mode='constant', cval=-1, mode=mode, sigma_scale=1.0)
    ours = sliding_window_inference(x, (3, 3), 10, _Counter(), **kwargs)
    theirs = monai_inferers.sliding_window_inference(x, (3, 3), 10, _Counter(), **kwargs)
    _close(ours, theirs)
    assert float(theirs.max() - theirs.min()) > 1.5  # the state does show in the result
    torch.manual_seed(0)
    net_a = _CountingNet().eval()
    net_b = _CountingNet().eval()
    net_b.load_state_dict(net_a.state_dict())
    y = torch.rand(1, 1, 40, 40)
    ours = sliding_window_inference(y, (8, 8), 4, net_a, overlap=0.5)
    with torch.no_grad():
        theirs = monai_inferers.sliding_window_inference(y, (8, 8), 4, net_b, overlap=0.5)
    assert net_a.calls == net_b.calls
    _close(ours, theirs)


def test_batch_dependent_network_is_not_split_by_default():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1),
                        nn.BatchNorm3d(4, track_running_stats=False), nn.ReLU(),
                        nn.Conv3d(4, 2, 1)).eval()
    assert not independent_samples(net)
    x = torch.randn(1, 1, 40, 40, 40, generator=torch.Generator().manual_seed(1))
    ours, theirs = _both(x, 16, 4, net, 0.5, mode='gaussian')
    _close(ours, theirs, atol=1e-4)
    # splitting each window batch into single windows is a different computation for this net
    split = sliding_window_inference(x, 16, 4, net, 0.5, mode='gaussian', micro_batch=1)
    assert (split - theirs).abs().max() > 1e-3


def test_independent_samples_only_for_provably_per_sample_networks():
    stock = nn.Sequential(nn.Conv3d(1, 4, 3), nn.InstanceNorm3d(4, affine=True),
                          nn.LeakyReLU(), nn.BatchNorm3d(4), nn.Conv3d(4, 2, 1))
    assert not independent_samples(stock.train())  # training-mode BatchNorm
    assert independent_samples(stock.eval()) and independent_samples(stock.eval().forward)
    assert not independent_samples(_CountingNet().eval())  # a custom forward
    assert not independent_samples(_Counter())
    assert not independent_samples(lambda w: w)
    from mmengine.registry import init_default_scope

    from densekit.registry import MODELS
    init_default_scope('densekit')
    seg = MODELS.build(dict(
        type='MedicalSegmentor',
        backbone=dict(type='ResUNetEncoder', in_channels=1, arch='tiny'),
        decode_head=dict(type='UNetDecoderHead', in_channels=[8, 16, 32, 64],
                         num_classes=3))).eval()
    assert independent_samples(seg) and independent_samples(seg._predictor)
    # its loss (batch Dice) is skipped as a child inference never runs, not declared per-sample
    assert not independent_samples(seg.loss_fn.eval())

    class Subclass(type(seg)):  # inherits the declaration's class, not the declaration
        pass
    assert 'per_sample_eval' not in Subclass.__dict__


def test_cval_args_kwargs_and_positional_arguments_match_monai():
    x = torch.ones(1, 1, 3, 3)
    ours, theirs = _both(x, (5, 5), 10, lambda d: d + d.sum(), overlap=0.5,
                         padding_mode='constant', cval=-1, mode='constant', sigma_scale=1.0)
    _close(ours, theirs)
    t1, t2 = torch.ones(1), torch.ones(1)

    def compute(data, test1, test2):
        return data + test1 + test2

    # every MONAI parameter given positionally, then an extra positional and a keyword
    args = (x, (5, 5), 10, compute, 0.5, 'constant', 1.0, 'constant', 0.0, 'cpu', 'cpu', False,
            None, None, None, 0, False, t1)
    ours, theirs = _both(*args, test2=t2)
    _close(ours, theirs)
    torch.testing.assert_close(ours, x + 2)


@pytest.mark.parametrize('with_condition', [False, True])
def test_several_outputs_tuple_and_dict_match_monai(with_condition):
    x = torch.rand(1, 6, 20, 20, generator=torch.Generator().manual_seed(0))
    cond = torch.rand(1, 6, 20, 20, generator=torch.Generator().manual_seed(1))
    extra = {'condition': cond} if with_condition else {}

    def outputs(data, condition=None):
        c = 0 if condition is None else condition
        full = data + 1 + c
        return full, full[:, ::3, ::2, ::2] + 2, full[:, ::2, ::4, ::4] + 3

    def as_dict(data, condition=None):
        return dict(enumerate(outputs(data, condition), start=1))

    for fn in (outputs, as_dict):
        ours, theirs = _both(x, (8, 8), 10, fn, 0.5, 'constant', 1.0, 'constant', 0.0, 'cpu',
                             'cpu', False, None, **extra)
        _close(ours, theirs)


@pytest.mark.parametrize('shape,roi,sw,overlap,mode', GRID_CASES[2:6])
def test_condition_is_windowed_like_the_input(shape, roi, sw, overlap, mode):
    x = torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape)
    cond = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    ours, theirs = _both(x, roi, sw, lambda data, condition: data + condition, overlap,
                         mode=mode, condition=cond)
    _close(ours, theirs, atol=1e-3)
    torch.testing.assert_close(ours, x + cond)


@pytest.mark.parametrize('with_condition', [False, True])
def test_batched_metatensor_keeps_its_type_metadata_and_gradients(with_condition):
    """What a MONAI DataLoader yields: a collated MetaTensor, here with requires_grad."""
    MetaTensor = monai_data.MetaTensor
    affine = torch.diag(torch.tensor([2.0, 1.5, 3.0, 1.0]))
    items = [MetaTensor(torch.rand(3, 16, 15, 7, generator=torch.Generator().manual_seed(i)),
                        affine=affine, meta={'filename_or_obj': f'case{i}.nii.gz'})
             for i in range(2)]
    batch = monai_data.utils.list_data_collate(items)
    assert isinstance(batch, MetaTensor) and batch.is_batch
    batch.requires_grad = True
    extra = {}
    if with_condition:
        extra['condition'] = monai_data.utils.list_data_collate(
            [MetaTensor(torch.ones(3, 16, 15, 7)) for _ in range(2)])

    def compute(data, condition=None):
        return data * 3 + (0 if condition is None else condition)

    ours = sliding_window_inference(batch, (4, 10, 7), 10, compute, **extra)
    theirs = monai_inferers.sliding_window_inference(batch, (4, 10, 7), 10, compute, **extra)
    assert type(ours) is type(theirs) is MetaTensor
    assert ours.requires_grad and theirs.requires_grad
    _close(ours.as_tensor(), theirs.as_tensor())
    torch.testing.assert_close(ours.affine, theirs.affine)
    assert ours.is_batch == theirs.is_batch
    assert ours.meta.get('filename_or_obj') == theirs.meta.get('filename_or_obj')
    ours.sum().backward()  # gradients reach the MetaTensor input
    assert batch.grad is not None
    torch.testing.assert_close(batch.grad, torch.full_like(batch.as_tensor(), 3.0))


def test_plain_tensor_input_gives_a_plain_tensor():
    out = sliding_window_inference(torch.rand(1, 1, 12, 12), 8, 2, lambda w: w)
    assert type(out) is torch.Tensor


@pytest.mark.parametrize('roi', [np.array([4, 10, 7]), np.array([4, -1, 7]),
                                 torch.tensor([4, 10, 7]), (np.int64(4), 10, 7)])
def test_roi_size_as_numpy_or_tensor(roi):
    x = torch.rand(2, 2, 16, 15, 7, generator=torch.Generator().manual_seed(0))
    ours, theirs = _both(x, roi, 3, lambda w: w * 2, 0.25)
    _close(ours, theirs)


@pytest.mark.parametrize('shape', [(1, 16, 16, 16), (16, 16, 16)])
def test_roi_and_input_rank_mismatch_is_a_clear_error(shape):
    x = torch.randn(shape)
    for fn in (sliding_window_inference, monai_inferers.sliding_window_inference):
        with pytest.raises(ValueError, match='(?i)inputs must have 5 dimensions'):
            fn(x, (16, 16, 16), 4, lambda d: d)


def test_every_window_batch_pattern_gives_monai_results():
    """sw_batch_size 1..7 over two images: window batches span both images like MONAI's."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU(),
                        nn.Conv2d(4, 3, 1)).eval()
    x = torch.randn(2, 2, 37, 29, generator=torch.Generator().manual_seed(1))
    for sw, mode in itertools.product(range(1, 8), ('constant', 'gaussian')):
        ours, theirs = _both(x, (16, 12), sw, net, 0.4, mode=mode)
        _close(ours, theirs, atol=1e-5)


def test_every_medical_config_is_split_automatically():
    """densekit's own medical models keep the measured window split (micro_batch='auto')."""
    from pathlib import Path

    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from densekit.registry import MODELS
    init_default_scope('densekit')
    configs = sorted((Path(__file__).parents[2] / 'configs' / 'medical3d').glob('*.py'))
    assert configs
    for path in configs:
        model = MODELS.build(Config.fromfile(str(path)).model).eval()
        assert independent_samples(model._predictor), path.name
