"""uniform_from_counter, dropout_forward and dropout_backward against pure-Python and
NumPy references, and the statistics of the masks."""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import kernels
import reference as ref

SHAPES = [pytest.param((70, 20), id="serial"), pytest.param((1100, 64), id="parallel")]


@pytest.mark.parametrize("seed, step, index", [
    (0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (12345, 678, 91011),
    (2**63 - 1, 2**40 + 3, 2**50 + 7), (7, 3, 10**6 - 1),
])
def test_uniform_from_counter_matches_reference(seed, step, index):
    """The kernel's uint64 arithmetic equals Python ints masked to 64 bits, exactly."""
    u = kernels.uniform_from_counter(seed, step, index)
    assert u == ref.uniform_from_counter(seed, step, index)
    assert 0.0 <= u < 1.0


def test_uniform_from_counter_known_value():
    """Pinned: a change of the hash changes every mask (and must be deliberate)."""
    assert ref.uniform_from_counter(0, 0, 1) == kernels.uniform_from_counter(0, 0, 1)
    values = [kernels.uniform_from_counter(0, 0, i) for i in range(3)]
    assert values[0] == 0.0  # splitmix64's finalizer maps 0 to 0
    assert len(set(values)) == 3


@pytest.mark.parametrize("keep_prob", [0.3, 0.8, 1.0])
@pytest.mark.parametrize("shape", SHAPES)
def test_dropout_forward_matches_reference(dtype, rng, shape, keep_prob):
    X = rng.standard_normal(shape).astype(dtype)
    mask, out = np.zeros(shape, bool), np.full_like(X, np.nan)
    kernels.dropout_forward(X, keep_prob, 42, 7, mask, out)
    rows = slice(0, 40)  # the pure-Python mask is slow: the first rows against it
    mask_ref, out_ref = ref.dropout_forward(X[rows], keep_prob, 42, 7)
    assert_array_equal(mask[rows], mask_ref)
    assert out.dtype == dtype
    assert_allclose(out[rows], out_ref, rtol=2e-7 if dtype == np.float32 else 1e-15)
    # The rest of the rows: the same rule with the kernel's own mask.
    assert_array_equal(out, np.where(mask, X * dtype(1.0 / keep_prob), 0))


@pytest.mark.parametrize("shape", SHAPES)
def test_dropout_backward_matches_reference(dtype, rng, shape):
    dA = rng.standard_normal(shape).astype(dtype)
    mask = rng.random(shape) < 0.7
    dX = np.full_like(dA, np.nan)
    kernels.dropout_backward(dA, mask, 0.7, dX)
    assert_allclose(dX, ref.dropout_backward(dA, mask, 0.7),
                    rtol=2e-7 if dtype == np.float32 else 1e-15)


def test_dropout_backward_applies_the_forward_mask(rng):
    X = rng.standard_normal((200, 50))
    mask, out = np.zeros(X.shape, bool), np.empty_like(X)
    kernels.dropout_forward(X, 0.6, 3, 11, mask, out)
    dX = np.empty_like(X)
    kernels.dropout_backward(np.ones_like(X), mask, 0.6, dX)
    assert_array_equal(dX != 0, mask)
    assert_array_equal(dX != 0, out != 0)
    assert_allclose(dX[mask], 1 / 0.6)


@pytest.mark.parametrize("keep_prob", [0.2, 0.5, 0.8])
def test_dropout_kept_fraction_and_mean(keep_prob):
    """On 10^6 elements the kept fraction is within 4 standard deviations of keep_prob,
    and the mean of the output is that of the input (inverted dropout)."""
    n = 10**6
    X = np.ones((1000, 1000), np.float32)
    mask, out = np.zeros(X.shape, bool), np.empty_like(X)
    kernels.dropout_forward(X, keep_prob, 2024, 0, mask, out)
    sd = np.sqrt(keep_prob * (1 - keep_prob) / n)
    assert abs(mask.mean() - keep_prob) < 4 * sd
    # mean(out) = mean(mask) / keep_prob: within 4 sd / keep_prob of 1
    assert abs(out.mean(dtype=np.float64) - 1.0) < 4 * sd / keep_prob


def test_dropout_masks_depend_on_seed_and_step_only():
    X = np.ones((300, 300))
    def mask(seed, step):
        m = np.zeros(X.shape, bool)
        kernels.dropout_forward(X, 0.5, seed, step, m, np.empty_like(X))
        return m
    assert mask(1, 2).tobytes() == mask(1, 2).tobytes()
    assert (mask(1, 2) != mask(1, 3)).mean() > 0.4
    assert (mask(1, 2) != mask(2, 2)).mean() > 0.4


def test_dropout_keep_prob_one_keeps_everything(rng):
    X = rng.standard_normal((70, 20))
    mask, out = np.zeros(X.shape, bool), np.empty_like(X)
    kernels.dropout_forward(X, 1.0, 5, 5, mask, out)
    assert mask.all()
    assert_array_equal(out, X)
