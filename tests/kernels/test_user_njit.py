"""The kernels called from a user's own @njit function: a small training loop.

A two-layer softmax classifier (tanh hidden layer, L2 on both weights) trained with
SGD entirely inside one jitted function, against the same loop in plain float64 NumPy.
"""
import numba
import numpy as np
import pytest
from numpy.testing import assert_allclose

import kernels
import reference as ref


@numba.njit  # no cache: a user's function, compiled here
def train(X, y, W1, b1, W2, b2, lr, l2, losses):
    """len(losses) SGD steps on (W1, b1, W2, b2) in place; losses[t] = cost before step t."""
    n = X.shape[0]
    h = W1.shape[1]
    c = W2.shape[1]
    Z1 = np.empty((n, h), X.dtype)
    A1 = np.empty((n, h), X.dtype)
    Z2 = np.empty((n, c), X.dtype)
    dZ2 = np.empty((n, c), X.dtype)
    dA1 = np.empty((n, h), X.dtype)
    no_dX = np.empty((0, 0), X.dtype)
    row_loss = np.empty(n)
    dW1, db1 = np.empty_like(W1), np.empty_like(b1)
    dW2, db2 = np.empty_like(W2), np.empty_like(b2)
    scratch1 = np.empty((kernels.n_blocks(n), h))
    scratch2 = np.empty((kernels.n_blocks(n), c))
    for t in range(losses.shape[0]):
        kernels.dense_forward(X, W1, b1, kernels.ACT_TANH, Z1, A1)
        kernels.dense_forward(A1, W2, b2, kernels.ACT_IDENTITY, Z2, Z2)
        loss = kernels.softmax_cross_entropy(Z2, y, dZ2, row_loss)
        loss += kernels.dense_backward(A1, W2, Z2, Z2, dZ2, kernels.ACT_IDENTITY, l2, 0.0,
                                       dZ2, dW2, db2, dA1, scratch2)
        loss += kernels.dense_backward(X, W1, Z1, A1, dA1, kernels.ACT_TANH, l2, 0.0,
                                       dA1, dW1, db1, no_dX, scratch1)
        losses[t] = loss
        kernels.sgd_step(W1.reshape(-1), dW1.reshape(-1), lr)
        kernels.sgd_step(b1, db1, lr)
        kernels.sgd_step(W2.reshape(-1), dW2.reshape(-1), lr)
        kernels.sgd_step(b2, db2, lr)


def train_reference(X, y, W1, b1, W2, b2, lr, l2, steps):
    """The same loop with the float64 references; returns (losses, W1, b1, W2, b2)."""
    W1, b1, W2, b2 = (np.array(a, np.float64) for a in (W1, b1, W2, b2))
    n = X.shape[0]
    losses = []
    for _ in range(steps):
        Z1, A1 = ref.dense_forward(X, W1, b1, kernels.ACT_TANH)
        Z2, _ = ref.dense_forward(A1, W2, b2, kernels.ACT_IDENTITY)
        loss, dZ2, _ = ref.softmax_cross_entropy(Z2, y)
        loss += ref.weight_penalty(W2, l2, 0.0, n) + ref.weight_penalty(W1, l2, 0.0, n)
        _, db2, dW2, dA1 = ref.dense_backward(A1, W2, Z2, dZ2, kernels.ACT_IDENTITY, l2, 0.0)
        _, db1, dW1, _ = ref.dense_backward(X, W1, Z1, dA1, kernels.ACT_TANH, l2, 0.0)
        losses.append(loss)
        W1, b1, W2, b2 = (ref.sgd_step(p, g, lr) for p, g in
                          ((W1, dW1), (b1, db1), (W2, dW2), (b2, db2)))
    return np.array(losses), W1, b1, W2, b2


#: (n, k, h, c): a tiny batch (serial kernels) and one whose hidden layer (n, h) is above
#: PARALLEL_MIN_SIZE (parallel kernels called from the user's function).
SHAPES = [pytest.param((70, 12, 16, 5), id="serial"),
          pytest.param((1100, 20, 64, 10), id="parallel")]


@pytest.mark.parametrize("shape", SHAPES)
def test_user_njit_training_loop_matches_reference(dtype, rng, tol, shape):
    n, k, h, c = shape
    X = rng.standard_normal((n, k)).astype(dtype)
    y = rng.integers(0, c, n)
    W1 = (rng.standard_normal((k, h)) / np.sqrt(k)).astype(dtype)
    b1 = (0.1 * rng.standard_normal(h)).astype(dtype)
    W2 = (rng.standard_normal((h, c)) / np.sqrt(h)).astype(dtype)
    b2 = np.zeros(c, dtype)
    lr, l2, steps = 0.5, 0.01 * n, 3
    expected = train_reference(X, y, W1, b1, W2, b2, lr, l2, steps)

    losses = np.full(steps, np.nan)
    train(X, y, W1, b1, W2, b2, lr, l2, losses)

    # three steps of float32 rounding in every GEMM: the GEMM tolerance, for inner dim n
    assert_allclose(losses, expected[0], **tol(dtype, "gemm", k=n))
    for got, want in zip((W1, b1, W2, b2), expected[1:]):
        assert got.dtype == dtype
        assert_allclose(got, want, **tol(dtype, "gemm", k=n))
    assert losses[2] < losses[0]  # it trains
