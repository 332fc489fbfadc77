"""The losses, softmax and the accuracy counts against the float64 reference.

Gradients of a mean loss are of order 1/n (or 1/(n k)); they are compared after
multiplying by that count (exact in float64), so the tolerances mean the same as for
order-1 values.
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import kernels
import reference as ref

#: (n, c): below and above PARALLEL_MIN_SIZE elements; 70 and 1100 rows are not
#: multiples of BLOCK_ROWS.
SHAPES = [pytest.param((70, 10), id="serial"), pytest.param((1100, 64), id="parallel")]

#: The reference may underflow (exp(-2000) = 0 is right), but must not overflow or NaN.
STRICT = dict(over="raise", divide="raise", invalid="raise", under="ignore")


def test_shapes_cover_serial_and_parallel():
    (n0, c0), (n1, c1) = (p.values[0] for p in SHAPES)
    assert n0 * c0 < kernels.PARALLEL_MIN_SIZE <= n1 * c1


def _scaled(a, count):
    return np.asarray(a, np.float64) * count


def _outputs(shape, dtype):
    """dZ and row_loss filled with NaN, so an element left unwritten fails."""
    return np.full(shape, np.nan, dtype), np.full(shape[0], np.nan)


def _check_loss(tol, dtype, got, expected, count):
    """got = (loss, dZ, row_loss) from the kernel; expected from the reference."""
    loss, dZ, row_loss = got
    loss_ref, dZ_ref, row_loss_ref = expected
    assert isinstance(loss, float)
    assert np.isfinite(dZ).all() and np.isfinite(row_loss).all() and np.isfinite(loss)
    assert_allclose(loss, loss_ref, **tol(dtype))
    assert_allclose(row_loss, row_loss_ref, **tol(dtype))
    assert_allclose(_scaled(dZ, count), _scaled(dZ_ref, count), **tol(dtype))


# --- softmax cross-entropy -----------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_cross_entropy_matches_reference(dtype, rng, tol, shape):
    n, c = shape
    Z = (3.0 * rng.standard_normal(shape)).astype(dtype)
    y = rng.integers(0, c, n)
    Z_in, y_in = Z.copy(), y.copy()
    dZ, row_loss = _outputs(shape, dtype)
    loss = kernels.softmax_cross_entropy(Z, y, dZ, row_loss)
    _check_loss(tol, dtype, (loss, dZ, row_loss), ref.softmax_cross_entropy(Z, y), n)
    assert_array_equal(Z, Z_in)
    assert_array_equal(y, y_in)


@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_cross_entropy_finite_for_logits_of_1000(dtype, rng, tol, shape):
    """Logits in [-1000, 1000]: exp would overflow without the row maximum taken out."""
    n, c = shape
    Z = rng.uniform(-1000.0, 1000.0, shape).astype(dtype)
    y = rng.integers(0, c, n)
    Z[0, :] = -1000.0
    Z[0, 3] = 1000.0
    y[0] = 3  # label at the maximum: loss 0
    Z[1, :] = 1000.0
    Z[1, 5] = -1000.0
    y[1] = 5  # label at the minimum: loss 2000 + log(c - 1)
    Z[2, :] = 1000.0  # all equal: loss log(c)
    with np.errstate(**STRICT):
        expected = ref.softmax_cross_entropy(Z, y)
    dZ, row_loss = _outputs(shape, dtype)
    loss = kernels.softmax_cross_entropy(Z, y, dZ, row_loss)
    _check_loss(tol, dtype, (loss, dZ, row_loss), expected, n)
    assert row_loss[0] == 0.0
    assert_allclose(row_loss[1], 2000.0 + np.log(c - 1), rtol=1e-12)
    assert_allclose(row_loss[2], np.log(c), rtol=1e-12)


# --- softmax -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_matches_reference(dtype, rng, tol, shape):
    Z = (3.0 * rng.standard_normal(shape)).astype(dtype)
    Z_in = Z.copy()
    P = np.full_like(Z, np.nan)
    kernels.softmax(Z, P)
    assert_allclose(P, ref.softmax(Z), **tol(dtype))
    assert_allclose(P.sum(axis=1, dtype=np.float64), 1.0, **tol(dtype, "gemm", k=shape[1]))
    assert_array_equal(Z, Z_in)


@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_in_place_and_finite_for_logits_of_1000(dtype, rng, tol, shape):
    """P may be Z itself; logits in [-1000, 1000] do not overflow."""
    Z = rng.uniform(-1000.0, 1000.0, shape).astype(dtype)
    Z[0, :] = 1000.0
    with np.errstate(**STRICT):
        expected = ref.softmax(Z)
    kernels.softmax(Z, Z)
    assert np.isfinite(Z).all()
    assert_allclose(Z, expected, **tol(dtype))
    assert_allclose(Z[0], 1.0 / shape[1], **tol(dtype))


# --- sigmoid binary cross-entropy ------------------------------------------------------

@pytest.mark.parametrize("targets", ["hard", "soft"])
@pytest.mark.parametrize("shape", SHAPES)
def test_sigmoid_binary_cross_entropy_matches_reference(dtype, rng, tol, shape, targets):
    Z = (3.0 * rng.standard_normal(shape)).astype(dtype)
    if targets == "hard":
        Y = rng.integers(0, 2, shape).astype(dtype)
    else:
        Y = rng.uniform(0.0, 1.0, shape).astype(dtype)
    inputs = [Z.copy(), Y.copy()]
    dZ, row_loss = _outputs(shape, dtype)
    loss = kernels.sigmoid_binary_cross_entropy(Z, Y, dZ, row_loss)
    _check_loss(tol, dtype, (loss, dZ, row_loss), ref.sigmoid_binary_cross_entropy(Z, Y), Z.size)
    for before, after in zip(inputs, [Z, Y]):
        assert_array_equal(after, before)


def test_sigmoid_binary_cross_entropy_finite_for_logits_of_1000(dtype, tol):
    Z = np.array([[1000.0, 1000.0, 1000.0, -1000.0, -1000.0, -1000.0],
                  [89.0, -89.0, 30.0, -30.0, 0.0, 0.0],
                  [40.0, -40.0, 50.0, -50.0, 36.0, -36.0]], dtype)
    Y = np.array([[1.0, 0.0, 0.5, 1.0, 0.0, 0.5],
                  [0.0, 1.0, 1.0, 0.0, 1.0, 0.5],
                  [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]], dtype)
    with np.errstate(**STRICT):
        expected = ref.sigmoid_binary_cross_entropy(Z, Y)
    dZ, row_loss = _outputs(Z.shape, dtype)
    loss = kernels.sigmoid_binary_cross_entropy(Z, Y, dZ, row_loss)
    _check_loss(tol, dtype, (loss, dZ, row_loss), expected, Z.size)
    # per element: 0, 1000, 500, 1000, 0, 500 for the first row
    assert_allclose(row_loss[0], 3000.0, rtol=1e-12)
    # confident and right: log1p(exp(-|z|)) ~ 1e-16 each, not rounded to 0 by log(1 + .)
    assert row_loss[2] > 0.0
    assert_allclose(row_loss[2], expected[2][2], rtol=1e-12, atol=0)


def test_bce_reference_is_the_textbook_formula(rng):
    """The reference's log-sum-exp form is -(y log s + (1 - y) log(1 - s)) at moderate z."""
    Z = rng.uniform(-20.0, 20.0, (50, 4))
    Y = rng.uniform(0.0, 1.0, (50, 4))
    s = 1.0 / (1.0 + np.exp(-Z))
    textbook = -(Y * np.log(s) + (1.0 - Y) * np.log(1.0 - s))
    assert_allclose(ref.sigmoid_binary_cross_entropy(Z, Y)[0], textbook.mean(), rtol=1e-9)


# --- mean squared error ----------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_mean_squared_error_matches_reference(dtype, rng, tol, shape):
    A = rng.standard_normal(shape).astype(dtype)
    Y = rng.standard_normal(shape).astype(dtype)
    inputs = [A.copy(), Y.copy()]
    dA, row_loss = _outputs(shape, dtype)
    loss = kernels.mean_squared_error(A, Y, dA, row_loss)
    _check_loss(tol, dtype, (loss, dA, row_loss), ref.mean_squared_error(A, Y), A.size)
    for before, after in zip(inputs, [A, Y]):
        assert_array_equal(after, before)
    # no 1/2: a constant error of 1 costs 1
    assert kernels.mean_squared_error(Y + 1, Y, dA, row_loss) == pytest.approx(1.0, rel=1e-6)


# --- accuracy counts -------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_count_correct_matches_reference(dtype, rng, shape):
    n, c = shape
    Z = rng.integers(0, 3, shape).astype(dtype)  # many ties: the first index wins
    y = np.argmax(Z, axis=1)
    y[::3] = rng.integers(0, c, y[::3].shape[0])
    got = kernels.count_correct(Z, y)
    expected = ref.count_correct(Z, y)
    assert got == expected
    assert 0 < expected < n


@pytest.mark.parametrize("shape", SHAPES)
def test_count_binary_correct_matches_reference(dtype, rng, shape):
    Z = rng.standard_normal(shape).astype(dtype)
    Z[:, 0] = 0.0  # z = 0 predicts class 0
    Y = rng.choice(np.array([0.0, 0.5, 1.0], dtype), size=shape)  # y = 0.5 is class 0
    got = kernels.count_binary_correct(Z, Y)
    expected = ref.count_binary_correct(Z, Y)
    assert got == expected
    assert 0 < expected < Z.size


@pytest.mark.parametrize("per_row", [1, 3])
def test_weight_rows_matches_reference(dtype, rng, tol, per_row):
    """The weighted mean and dZ rows scaled by w_i n / sum w, against the float64
    reference; a zero total gives 0 and a zero dZ."""
    n, k = 37, 3
    dZ = rng.standard_normal((n, k)).astype(dtype)
    row_loss = rng.random(n) * 3
    w = rng.random(n) * 2
    w[::5] = 0.0
    expected_loss, expected_dZ = ref.weight_rows(w, per_row, dZ, row_loss)
    got = kernels.weight_rows(w, per_row, dZ, row_loss)
    assert got == pytest.approx(expected_loss, rel=1e-13)
    assert_allclose(dZ, expected_dZ, **tol(dtype))
    assert kernels.weight_rows(np.zeros(n), per_row, dZ, row_loss) == 0.0
    assert not dZ.any()
