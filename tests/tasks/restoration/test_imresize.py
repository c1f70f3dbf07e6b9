"""MATLAB bicubic imresize: kernel values and outputs derived by hand from the definition."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from densekit.tasks.restoration.color import rgb2y, rgb2ycbcr, ycbcr2rgb
from densekit.tasks.restoration.imresize import cubic, imresize, imresize_tensor, resize_weights
from tests.restoration_threads import idle_threads  # noqa: F401

# Keys' kernel (a = -0.5) at the tap distances of a x2 reduction (stretched by 2), times 256:
# k(0.25) = 0.8671875, k(0.75) = 0.2265625, k(1.25) = -0.0703125, k(1.75) = -0.0234375;
# halved and normalised these are 111/256, 29/256, -9/256, -3/256 (they already sum to 1).
DOWN2 = np.array([-3, -9, 29, 111, 111, 29, -9, -3]) / 256


def test_cubic_kernel_values() -> None:
    x = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5], dtype=torch.float64)
    expected = [1.0, 0.8671875, 0.5625, 0.2265625, 0.0, -0.0703125, -0.0625, -0.0234375, 0.0, 0.0]
    assert cubic(x).tolist() == expected
    assert cubic(-x).tolist() == expected


def test_x2_reduction_weights_and_mirrored_indices() -> None:
    weights, idx = resize_weights(8, 4, 0.5)
    for row in weights:
        np.testing.assert_allclose(row.numpy(), DOWN2, atol=1e-15)
    # output 1 is centred at input 1.5 (1-based): taps -2..5, mirrored at the edge (x0 = x1)
    assert idx.tolist() == [[2, 1, 0, 0, 1, 2, 3, 4], [0, 0, 1, 2, 3, 4, 5, 6],
                            [1, 2, 3, 4, 5, 6, 7, 7], [3, 4, 5, 6, 7, 7, 6, 5]]


def test_ramp_reduction_matches_hand_computation() -> None:
    # imresize(1:8, 0.5) row by row: out1 = (3*-3 + 2*-9 + 1*29 + 1*111 + 2*111 + 3*29 + 4*-9
    # + 5*-3) / 256 = 371/256; out2 on [1, 1, 2, ..., 7] = 893/256; the rest by symmetry.
    ramp = np.tile(np.arange(1, 9, dtype=np.float64), (8, 1))
    out = imresize(ramp, 0.5)
    expected = [371 / 256, 893 / 256, 9 - 893 / 256, 9 - 371 / 256]
    np.testing.assert_allclose(out, np.tile(expected, (4, 1)), atol=1e-12)


def test_x2_enlargement_matches_hand_computation() -> None:
    # output 1 of imresize([1 2 3 4], 2) sits at u = 0.75: taps x(-1)=2, x(0)=1, x(1)=1, x(2)=2
    # with k(1.75), k(0.75), k(0.25), k(1.25) -> 0.90625; output 2 at u = 1.25 -> 1.1796875.
    row = imresize(np.tile(np.arange(1, 5, dtype=np.float64), (4, 1)), 2)[0]
    np.testing.assert_allclose(row[:2], [0.90625, 1.1796875], atol=1e-12)
    np.testing.assert_allclose(row, 5 - row[::-1], atol=1e-12)  # mirror symmetry


def test_x3_x4_reduction_weights_sum_to_one_and_reproduce_constants() -> None:
    for scale in (3, 4):
        weights, _ = resize_weights(24, 24 // scale, 1 / scale)
        assert weights.shape[1] == 4 * scale + (2 if scale == 3 else 0) or weights.shape[1] > 4
        np.testing.assert_allclose(weights.sum(1).numpy(), 1.0, atol=1e-12)
    image = np.full((24, 36, 3), 77, np.uint8)
    assert (imresize(image, 1 / 3) == 77).all() and imresize(image, 1 / 3).shape == (8, 12, 3)


def test_uint8_rounds_half_away_from_zero_and_clips() -> None:
    image = np.zeros((8, 8), np.uint8)
    image[:, 4:] = 255  # an edge overshoots below 0 and above 255
    out = imresize(image, 0.5)
    reference = imresize(image.astype(np.float64), 0.5)
    np.testing.assert_array_equal(out, np.clip(np.floor(reference + 0.5), 0, 255))
    assert out.dtype == np.uint8 and reference.min() < 0 and reference.max() > 255


def test_tensor_version_matches_numpy_and_batches() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((20, 30, 3))
    batch = torch.from_numpy(image.transpose(2, 0, 1)).unsqueeze(0).repeat(2, 1, 1, 1)
    out = imresize_tensor(batch, 0.5)
    np.testing.assert_allclose(out[1].permute(1, 2, 0).numpy(), imresize(image, 0.5), atol=1e-12)
    with pytest.raises(TypeError, match='floating'):
        imresize_tensor(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 0.5)
    with pytest.raises(ValueError, match='in_len'):
        resize_weights(0, 4, 0.5)


def test_bt601_conversions() -> None:
    white, black = torch.ones(1, 3, 1, 1), torch.zeros(1, 3, 1, 1)
    assert rgb2y(white).item() * 255 == pytest.approx(235.0, abs=1e-4)
    assert rgb2y(black).item() * 255 == pytest.approx(16.0, abs=1e-4)
    ycc = rgb2ycbcr(white)[0, :, 0, 0] * 255
    np.testing.assert_allclose(ycc.numpy(), [235.0, 128.0, 128.0], atol=1e-3)
    x = torch.rand(2, 3, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(ycbcr2rgb(rgb2ycbcr(x)), x)


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_upscale_integer_is_imresize_and_traces_size_free(scale: int) -> None:
    from densekit.tasks.restoration.imresize import upscale_integer

    for size in ((2, 3), (5, 7), (17, 12)):  # the smallest sizes mirror the most taps
        x = torch.rand(2, 3, *size, dtype=torch.float64)
        # float64: only the order of the sums differs from imresize_tensor's
        assert float((upscale_integer(x, scale) - imresize_tensor(x, float(scale))).abs().max()) \
            < 1e-12
    traced = torch.jit.trace(lambda t: imresize_tensor(t, float(scale)),
                             torch.rand(1, 1, 6, 9, dtype=torch.float64))
    other = torch.rand(1, 1, 11, 4, dtype=torch.float64)  # a size the trace never saw
    assert float((traced(other) - imresize_tensor(other, float(scale))).abs().max()) < 1e-12
