"""Losses fused with their gradient with respect to the last layer's output.

Each kernel writes the gradient of the mean loss into ``dZ`` and returns the mean
loss as a float64. Per-row losses go to ``row_loss`` and are summed in row order, so
the loss is the same bits for any thread count.

- softmax cross-entropy, mean over the n rows:  L = mean_i (logsumexp(z_i) - z_i[y_i]),
  dZ = (softmax(Z) - onehot(y)) / n.
- sigmoid binary cross-entropy, mean over all n*k elements (as PyTorch's
  ``BCEWithLogitsLoss``):  l = max(z, 0) - z*y + log(1 + exp(-|z|)),
  dZ = (sigmoid(Z) - Y) / (n k).
- mean squared error, mean over all n*k elements (as PyTorch's ``MSELoss``, no 1/2):
  l = (a - y)^2,  dZ = 2 (A - Y) / (n k).
"""
import math

import numpy as np
from numba import njit, prange

from ._parallel import PARALLEL_MIN_SIZE, serial_and_parallel
from ._reduce import ordered_sum
from .activations import ACT_SIGMOID, activate


@njit(cache=True, inline="always")
def _softmax_ce_row(z, label, inv_n, dz):
    zmax = z[0]
    for j in range(1, z.shape[0]):
        if z[j] > zmax:
            zmax = z[j]
    s = 0.0  # float64: the normaliser of up to thousands of terms
    for j in range(z.shape[0]):
        e = math.exp(z[j] - zmax)
        dz[j] = e
        s += e
    scale = inv_n / s
    for j in range(z.shape[0]):
        dz[j] = dz[j] * scale
    dz[label] -= inv_n
    return math.log(s) + zmax - z[label]


def _softmax_ce(Z, y, dZ, row_loss):
    inv_n = 1.0 / Z.shape[0]
    for i in prange(Z.shape[0]):
        row_loss[i] = _softmax_ce_row(Z[i], y[i], inv_n, dZ[i])


_softmax_ce_serial, _softmax_ce_parallel = serial_and_parallel(_softmax_ce)


@njit(cache=True)
def softmax_cross_entropy(Z, y, dZ, row_loss, parallel=True):
    """Mean softmax cross-entropy of logits Z against labels y, and its gradient.

    Z (n, c) read (logits); y (n,) int64 read, each in [0, c); dZ (n, c) written with
    (softmax(Z) - onehot(y)) / n; row_loss (n,) float64 written with each row's loss.
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.
    Returns the mean loss (float64).

    Notes: log-sum-exp with the row maximum subtracted, so logits of magnitude 1e3
    give finite results; parallel over rows for large Z; same bits for any thread count.
    """
    if parallel is not None:
        if parallel and Z.size >= PARALLEL_MIN_SIZE:
            _softmax_ce_parallel(Z, y, dZ, row_loss)
        else:
            _softmax_ce_serial(Z, y, dZ, row_loss)
    else:
        _softmax_ce_serial(Z, y, dZ, row_loss)
    return ordered_sum(row_loss) / Z.shape[0]


@njit(cache=True, inline="always")
def _bce_row(z, t, inv_nk, dz):
    acc = 0.0
    for j in range(z.shape[0]):
        zj = np.float64(z[j])
        tj = np.float64(t[j])
        acc += max(zj, 0.0) - zj * tj + math.log1p(math.exp(-abs(zj)))
        dz[j] = (activate(zj, ACT_SIGMOID) - tj) * inv_nk
    return acc


def _bce(Z, Y, dZ, row_loss):
    inv_nk = 1.0 / Z.size
    for i in prange(Z.shape[0]):
        row_loss[i] = _bce_row(Z[i], Y[i], inv_nk, dZ[i])


_bce_serial, _bce_parallel = serial_and_parallel(_bce)


@njit(cache=True)
def sigmoid_binary_cross_entropy(Z, Y, dZ, row_loss, parallel=True):
    """Mean binary cross-entropy of sigmoid(Z) against targets Y, and its gradient.

    Z (n, k) read (logits); Y (n, k) read, targets in [0, 1], Z's dtype; dZ (n, k)
    written with (sigmoid(Z) - Y) / (n k); row_loss (n,) float64 written with each row's
    summed loss. Returns the mean over all n k elements (float64).
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.

    Notes: the log-sum-exp form max(z, 0) - z y + log1p(exp(-|z|)) never overflows.
    """
    if parallel is not None:
        if parallel and Z.size >= PARALLEL_MIN_SIZE:
            _bce_parallel(Z, Y, dZ, row_loss)
        else:
            _bce_serial(Z, Y, dZ, row_loss)
    else:
        _bce_serial(Z, Y, dZ, row_loss)
    return ordered_sum(row_loss) / Z.size


@njit(cache=True, inline="always")
def _mse_row(a, t, two_over_nk, dz):
    acc = 0.0
    for j in range(a.shape[0]):
        diff = np.float64(a[j]) - np.float64(t[j])
        acc += diff * diff
        dz[j] = diff * two_over_nk
    return acc


def _mse(A, Y, dA, row_loss):
    two_over_nk = 2.0 / A.size
    for i in prange(A.shape[0]):
        row_loss[i] = _mse_row(A[i], Y[i], two_over_nk, dA[i])


_mse_serial, _mse_parallel = serial_and_parallel(_mse)


@njit(cache=True)
def mean_squared_error(A, Y, dA, row_loss, parallel=True):
    """Mean squared error of predictions A against targets Y, and its gradient.

    A (n, k) read; Y (n, k) read, A's dtype; dA (n, k) written with 2 (A - Y) / (n k);
    row_loss (n,) float64 written with each row's summed squared error. Returns the
    mean over all n k elements (float64).
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.
    """
    if parallel is not None:
        if parallel and A.size >= PARALLEL_MIN_SIZE:
            _mse_parallel(A, Y, dA, row_loss)
        else:
            _mse_serial(A, Y, dA, row_loss)
    else:
        _mse_serial(A, Y, dA, row_loss)
    return ordered_sum(row_loss) / A.size


@njit(cache=True, inline="always")
def _softmax_row(z, p):
    zmax = z[0]
    for j in range(1, z.shape[0]):
        if z[j] > zmax:
            zmax = z[j]
    s = 0.0
    for j in range(z.shape[0]):
        e = math.exp(z[j] - zmax)
        p[j] = e
        s += e
    inv = 1.0 / s
    for j in range(z.shape[0]):
        p[j] = p[j] * inv


def _softmax(Z, P):
    for i in prange(Z.shape[0]):
        _softmax_row(Z[i], P[i])


_softmax_serial, _softmax_parallel = serial_and_parallel(_softmax)


@njit(cache=True)
def softmax(Z, P, parallel=True):
    """Row-wise softmax: P[i] = exp(Z[i] - max Z[i]) / sum exp(Z[i] - max Z[i]).

    Z (n, c) read; P (n, c) written (may be Z itself).
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.
    """
    if parallel is not None:
        if parallel and Z.size >= PARALLEL_MIN_SIZE:
            _softmax_parallel(Z, P)
            return
    _softmax_serial(Z, P)


@njit(cache=True)
def count_correct(Z, y):
    """Rows whose largest score is at the label: #{i : argmax_j Z[i, j] == y[i]}.

    Z (n, c) read; y (n,) int64 read. Ties go to the lowest index, as ``np.argmax``.
    """
    hits = 0
    for i in range(Z.shape[0]):
        best = 0
        for j in range(1, Z.shape[1]):
            if Z[i, j] > Z[i, best]:
                best = j
        if best == y[i]:
            hits += 1
    return hits


@njit(cache=True)
def count_binary_correct(Z, Y):
    """Elements whose logit is on the side of its target: #{(i, j) : (Z > 0) == (Y > 0.5)}.

    Z (n, k) read (logits); Y (n, k) read (targets in [0, 1]).
    """
    hits = 0
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            if (Z[i, j] > 0) == (Y[i, j] > 0.5):
                hits += 1
    return hits


@njit(cache=True)
def weight_rows(w, per_row, dZ, row_loss):
    """Turn a loss kernel's mean into a weighted mean, in place, and return it.

    Call after a loss kernel filled dZ (n, k) with the gradient of the plain mean and
    row_loss (n,) with each row's loss (summed over its ``per_row`` averaged elements:
    1 for softmax cross-entropy, k for BCE and MSE). w (n,) float64 >= 0 read.
    Returns ``sum_i w_i row_loss_i / (sum_i w_i * per_row)``; scales row i of dZ by
    ``w_i n / sum(w)``, its gradient; row_loss becomes ``w_i row_loss_i``. A zero weight
    sum gives 0 and a zero gradient.

    Notes: sums in row order, so the same bits for any thread count.
    """
    n = w.shape[0]
    total = ordered_sum(w)
    for i in range(n):
        scale = w[i] * n / total if total > 0.0 else 0.0
        for j in range(dZ.shape[1]):
            dZ[i, j] = dZ[i, j] * scale
        row_loss[i] = row_loss[i] * w[i]
    if total == 0.0:
        return 0.0
    return ordered_sum(row_loss) / (total * per_row)
