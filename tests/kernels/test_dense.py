"""dense_forward, dense_backward and weight_penalty against the float64 reference."""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import kernels
import reference as ref

#: (n, k, m): X (n, k) @ W (k, m). The output (n, m) of the first is below
#: PARALLEL_MIN_SIZE, of the second above it; 70 and 1100 are not multiples of BLOCK_ROWS.
SHAPES = [pytest.param((70, 12, 20), id="serial"), pytest.param((1100, 48, 64), id="parallel")]

ACT_CODES = [
    pytest.param(kernels.ACT_IDENTITY, id="identity"),
    pytest.param(kernels.ACT_RELU, id="relu"),
    pytest.param(kernels.ACT_LEAKY_RELU, id="leaky_relu"),
    pytest.param(kernels.ACT_TANH, id="tanh"),
    pytest.param(kernels.ACT_SIGMOID, id="sigmoid"),
]

BIAS = [pytest.param(True, id="bias"), pytest.param(False, id="nobias")]


def test_shapes_cover_serial_and_parallel():
    (n0, _, m0), (n1, _, m1) = (p.values[0] for p in SHAPES)
    assert n0 * m0 < kernels.PARALLEL_MIN_SIZE <= n1 * m1
    assert n0 % kernels.BLOCK_ROWS and n1 % kernels.BLOCK_ROWS and n0 > kernels.BLOCK_ROWS


def _layer(rng, shape, dtype, with_bias):
    """X, W, b with X @ W + b of order 1; b of shape (0,) for no bias."""
    n, k, m = shape
    X = rng.standard_normal((n, k)).astype(dtype)
    W = (rng.standard_normal((k, m)) / np.sqrt(k)).astype(dtype)
    W[0, 0] = 0.0  # sign(0) = 0 in the L1 gradient
    b = (0.5 * rng.standard_normal(m)).astype(dtype) if with_bias else np.zeros(0, dtype)
    return X, W, b


def _backward_inputs(rng, shape, dtype, with_bias, act_code):
    """X, W, b, Z, A (Z and A from the reference, rounded to dtype) and dA (order 1/sqrt(n),
    as from a mean loss, so dW and db are of order 1)."""
    n, _, m = shape
    X, W, b = _layer(rng, shape, dtype, with_bias)
    Z, A = (a.astype(dtype) for a in ref.dense_forward(X, W, b, act_code))
    dA = (rng.standard_normal((n, m)) / np.sqrt(n)).astype(dtype)
    return X, W, b, Z, A, dA


def _outputs(shape, dtype, with_bias, with_dX=True):
    """dZ, dW, db, dX, scratch filled with NaN, so an element left unwritten fails."""
    n, k, m = shape
    dZ = np.full((n, m), np.nan, dtype)
    dW = np.full((k, m), np.nan, dtype)
    db = np.full(m if with_bias else 0, np.nan, dtype)
    dX = np.full((n, k) if with_dX else (0, 0), np.nan, dtype)
    scratch = np.full((kernels.n_blocks(n), m), np.nan)
    return dZ, dW, db, dX, scratch


def _check_backward(tol, dtype, shape, got, expected, with_bias, with_dX=True):
    n, k, m = shape
    dZ, dW, db, dX = got
    dZ_ref, db_ref, dW_ref, dX_ref = expected
    assert_allclose(dZ, dZ_ref, **tol(dtype))
    assert_allclose(dW, dW_ref, **tol(dtype, "gemm", k=n))
    if with_bias:
        assert_allclose(db, db_ref, **tol(dtype, "gemm", k=n))  # a sum of n rounded dZ
    else:
        assert db.shape == (0,)
    if with_dX:
        assert_allclose(dX, dX_ref, **tol(dtype, "gemm", k=m))
    else:
        assert dX.shape == (0, 0)


# --- forward -----------------------------------------------------------------------

@pytest.mark.parametrize("with_bias", BIAS)
@pytest.mark.parametrize("act_code", ACT_CODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_dense_forward_matches_reference(dtype, rng, tol, shape, act_code, with_bias):
    n, k, m = shape
    X, W, b = _layer(rng, shape, dtype, with_bias)
    inputs = [X.copy(), W.copy(), b.copy()]
    Z = np.full((n, m), np.nan, dtype)
    A = np.full((n, m), np.nan, dtype)
    kernels.dense_forward(X, W, b, act_code, Z, A)
    Z_ref, A_ref = ref.dense_forward(X, W, b, act_code)
    assert_allclose(Z, Z_ref, **tol(dtype, "gemm", k=k))
    assert_allclose(A, A_ref, **tol(dtype, "gemm", k=k))
    # A is act of the Z the kernel kept, to the elementwise tolerance
    assert_allclose(A, ref.activation_forward(Z, act_code), **tol(dtype))
    for before, after in zip(inputs, [X, W, b]):
        assert_array_equal(after, before)


@pytest.mark.parametrize("with_bias", BIAS)
@pytest.mark.parametrize("shape", SHAPES)
def test_dense_forward_identity_A_is_Z(dtype, rng, tol, shape, with_bias):
    """With the identity, A may be Z itself."""
    n, k, m = shape
    X, W, b = _layer(rng, shape, dtype, with_bias)
    Z = np.full((n, m), np.nan, dtype)
    kernels.dense_forward(X, W, b, kernels.ACT_IDENTITY, Z, Z)
    assert_allclose(Z, ref.dense_forward(X, W, b, kernels.ACT_IDENTITY)[0],
                    **tol(dtype, "gemm", k=k))


# --- backward ----------------------------------------------------------------------

@pytest.mark.parametrize("with_bias", BIAS)
@pytest.mark.parametrize("act_code", ACT_CODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_dense_backward_matches_reference(dtype, rng, tol, shape, act_code, with_bias):
    X, W, b, Z, A, dA = _backward_inputs(rng, shape, dtype, with_bias, act_code)
    inputs = [a.copy() for a in (X, W, Z, A, dA)]
    dZ, dW, db, dX, scratch = _outputs(shape, dtype, with_bias)
    cost = kernels.dense_backward(X, W, Z, A, dA, act_code, 0.0, 0.0, dZ, dW, db, dX, scratch)
    assert cost == 0.0
    expected = ref.dense_backward(X, W, Z, dA, act_code, 0.0, 0.0)
    _check_backward(tol, dtype, shape, (dZ, dW, db, dX), expected, with_bias)
    for before, after in zip(inputs, [X, W, Z, A, dA]):
        assert_array_equal(after, before)


@pytest.mark.parametrize("l2_per_row, l1_per_row", [(0.1, 0.0), (0.0, 0.05), (0.1, 0.05)],
                         ids=["l2", "l1", "l2+l1"])
@pytest.mark.parametrize("shape", SHAPES)
def test_dense_backward_with_penalties_matches_reference(dtype, rng, tol, shape,
                                                         l2_per_row, l1_per_row):
    """lambda = (per row) * n, so that the l/m terms in dW are of the order of X.T @ dZ."""
    n = shape[0]
    l2, l1 = l2_per_row * n, l1_per_row * n
    act_code = kernels.ACT_TANH
    X, W, b, Z, A, dA = _backward_inputs(rng, shape, dtype, True, act_code)
    dZ, dW, db, dX, scratch = _outputs(shape, dtype, True)
    cost = kernels.dense_backward(X, W, Z, A, dA, act_code, l2, l1, dZ, dW, db, dX, scratch)
    expected = ref.dense_backward(X, W, Z, dA, act_code, l2, l1)
    _check_backward(tol, dtype, shape, (dZ, dW, db, dX), expected, True)
    # the penalty terms are not lost in the tolerance
    no_penalty = ref.dense_backward(X, W, Z, dA, act_code, 0.0, 0.0)[2]
    assert np.abs(dW - no_penalty).max() > 100 * tol(dtype, "gemm", k=n)["atol"]
    # the returned cost is the penalty read on the way through W
    assert isinstance(cost, float)
    assert_allclose(cost, ref.weight_penalty(W, l2, l1, n), rtol=1e-12)


@pytest.mark.parametrize("with_bias", BIAS)
@pytest.mark.parametrize("shape", SHAPES)
def test_dense_backward_without_dX(dtype, rng, tol, shape, with_bias):
    """dX of shape (0, 0) skips the input gradient (the first layer)."""
    act_code = kernels.ACT_RELU
    X, W, b, Z, A, dA = _backward_inputs(rng, shape, dtype, with_bias, act_code)
    dZ, dW, db, dX, scratch = _outputs(shape, dtype, with_bias, with_dX=False)
    kernels.dense_backward(X, W, Z, A, dA, act_code, 0.2, 0.1, dZ, dW, db, dX, scratch)
    expected = ref.dense_backward(X, W, Z, dA, act_code, 0.2, 0.1)
    _check_backward(tol, dtype, shape, (dZ, dW, db, dX), expected, with_bias, with_dX=False)


@pytest.mark.parametrize("act_code", [pytest.param(kernels.ACT_IDENTITY, id="identity"),
                                      pytest.param(kernels.ACT_SIGMOID, id="sigmoid")])
@pytest.mark.parametrize("with_bias", BIAS)
@pytest.mark.parametrize("shape", SHAPES)
def test_dense_backward_dZ_aliases_dA(dtype, rng, tol, shape, with_bias, act_code):
    """dZ may be dA itself; for the identity without bias the kernel skips the pass."""
    X, W, b, Z, A, dA = _backward_inputs(rng, shape, dtype, with_bias, act_code)
    expected = ref.dense_backward(X, W, Z, dA, act_code, 0.0, 0.0)
    _, dW, db, dX, scratch = _outputs(shape, dtype, with_bias)
    kernels.dense_backward(X, W, Z, A, dA, act_code, 0.0, 0.0, dA, dW, db, dX, scratch)
    _check_backward(tol, dtype, shape, (dA, dW, db, dX), expected, with_bias)


@pytest.mark.parametrize("l2, l1", [(0.0, 0.0), (0.7, 0.0), (0.0, 0.3), (0.7, 0.3)])
def test_weight_penalty_matches_reference(dtype, rng, l2, l1):
    W = rng.standard_normal((30, 20)).astype(dtype)
    W[0, 0] = 0.0
    got = kernels.weight_penalty(W, l2, l1, 70)
    assert isinstance(got, float)
    # float64 accumulation of exactly representable values: float64 accuracy in both dtypes
    assert_allclose(got, ref.weight_penalty(W, l2, l1, 70), rtol=1e-13, atol=0)
    if l2 == l1 == 0.0:
        assert got == 0.0
