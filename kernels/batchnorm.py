"""Batch normalization over the rows of a batch, with an optional fused activation.

Training forward, per feature j over the m rows of Z:
    mean_j = sum_i Z_ij / m,   var_j = sum_i (Z_ij - mean_j)^2 / m   (biased),
    inv_std_j = 1 / sqrt(var_j + eps),   X_hat = (Z - mean) * inv_std,
    A = act(gamma * X_hat + beta),
    running_mean = momentum * running_mean + (1 - momentum) * mean  (and var likewise).
Inference forward: the same with running_mean and running_var in place of the batch's.
Backward, with dY = dA * act'(gamma * X_hat + beta):
    dbeta = sum_i dY,  dgamma = sum_i dY * X_hat,
    dZ = gamma * inv_std * (dY - dbeta / m - X_hat * dgamma / m).

X_hat is not stored: backward recomputes it from Z, mean and inv_std with the same
expression, which saves a write of the batch in the forward pass.

Parallelism and determinism: the training kernels run in chunks of ``CHUNK_COLS``
columns (prange over chunks); each column is summed over the rows in row order into a
float64 accumulator, so every result is the same bits for any thread count and for the
serial and parallel variants.
"""
import math

import numpy as np
from numba import njit, prange

from ._reduce import PARALLEL_MIN_SIZE
from .activations import ACT_IDENTITY, ACT_RELU, activate, activate_grad

#: Columns per parallel task. 32 was 1.75x slower than 256 on (4096, 1024) float32
#: (rows 4 KB apart map to the same cache sets, so a narrow chunk thrashes); a change
#: does not change result bits (each column is summed alone).
CHUNK_COLS = 1024


@njit(cache=True)
def n_chunks(d):
    """Number of column chunks for ``d`` features."""
    return (d + CHUNK_COLS - 1) // CHUNK_COLS


@njit(cache=True, inline="always")
def _train_chunk(Z, gamma, beta, running_mean, running_var, momentum, eps, act_code, c,
                 mean, inv_std, A):
    n, d = Z.shape
    j0 = c * CHUNK_COLS
    j1 = min(d, j0 + CHUNK_COLS)
    w = j1 - j0
    t = A.dtype.type
    # Local float64 accumulators of the chunk's width, indexed from 0 over contiguous
    # row slices: the inner loops are elementwise (acc[k] += z[k]), so LLVM vectorizes
    # them across columns without reordering any column's row-order sum.
    acc = np.zeros(w)
    mu = np.empty(w)
    for i in range(n):
        zr = Z[i, j0:j1]
        for k in range(w):
            acc[k] += zr[k]
    for k in range(w):
        mu[k] = acc[k] / n
        acc[k] = 0.0
    for i in range(n):
        zr = Z[i, j0:j1]
        for k in range(w):
            dev = zr[k] - mu[k]
            acc[k] += dev * dev
    keep = momentum
    mf = np.empty(w, A.dtype)   # mean, inv_std, gamma and beta in Z's dtype
    sf = np.empty(w, A.dtype)
    gf = np.empty(w, A.dtype)
    bf = np.empty(w, A.dtype)
    for k in range(w):
        j = j0 + k
        var = acc[k] / n
        m = mu[k]
        s = 1.0 / math.sqrt(var + eps)
        mean[j] = m
        inv_std[j] = s
        running_mean[j] = keep * running_mean[j] + (1.0 - keep) * m
        running_var[j] = keep * running_var[j] + (1.0 - keep) * var
        mf[k] = t(m)
        sf[k] = t(s)
        gf[k] = gamma[j]
        bf[k] = beta[j]
    if act_code == ACT_IDENTITY:
        for i in range(n):
            zr = Z[i, j0:j1]
            ar = A[i, j0:j1]
            for k in range(w):
                ar[k] = gf[k] * ((zr[k] - mf[k]) * sf[k]) + bf[k]
    elif act_code == ACT_RELU:
        for i in range(n):
            zr = Z[i, j0:j1]
            ar = A[i, j0:j1]
            for k in range(w):
                y = gf[k] * ((zr[k] - mf[k]) * sf[k]) + bf[k]
                ar[k] = y if y > 0 else t(0.0)
    else:
        for i in range(n):
            zr = Z[i, j0:j1]
            ar = A[i, j0:j1]
            for k in range(w):
                ar[k] = activate(gf[k] * ((zr[k] - mf[k]) * sf[k]) + bf[k], act_code)


@njit(cache=True)
def _bn_train_serial(Z, gamma, beta, running_mean, running_var, momentum, eps, act_code,
                     mean, inv_std, A):
    for c in range(n_chunks(Z.shape[1])):
        _train_chunk(Z, gamma, beta, running_mean, running_var, momentum, eps, act_code, c,
                     mean, inv_std, A)


@njit(cache=True, parallel=True)
def _bn_train_parallel(Z, gamma, beta, running_mean, running_var, momentum, eps, act_code,
                       mean, inv_std, A):
    for c in prange(n_chunks(Z.shape[1])):
        _train_chunk(Z, gamma, beta, running_mean, running_var, momentum, eps, act_code, c,
                     mean, inv_std, A)


@njit(cache=True)
def batchnorm_forward_train(Z, gamma, beta, running_mean, running_var, momentum, eps,
                            act_code, mean, inv_std, A):
    """Training forward: normalize with the batch statistics, scale, shift, activate.

    ``A = act(gamma * (Z - mean) * inv_std + beta)`` with the batch mean and
    ``inv_std = 1/sqrt(var + eps)`` of the biased batch variance; then
    ``running = momentum * running + (1 - momentum) * batch`` for mean and variance.

    Z (n, d) read; gamma, beta (d,) read; running_mean, running_var (d,) updated;
    momentum float in [0, 1] (weight of the old value: PyTorch's 0.1 is 0.9 here);
    eps float > 0; act_code int (``kernels.ACT_*``, ``ACT_IDENTITY`` for none);
    mean, inv_std (d,) float64 written (kept for ``batchnorm_backward``);
    A (n, d) written. Float arrays other than mean and inv_std share Z's dtype.

    Notes: a single row gives var = 0 and A = act(beta), a zero-variance feature
    likewise: eps keeps inv_std finite. Parallel over column chunks for large Z, each
    column summed in row order: the same bits for any thread count.
    """
    if Z.size >= PARALLEL_MIN_SIZE:
        _bn_train_parallel(Z, gamma, beta, running_mean, running_var, momentum, eps,
                           act_code, mean, inv_std, A)
    else:
        _bn_train_serial(Z, gamma, beta, running_mean, running_var, momentum, eps,
                         act_code, mean, inv_std, A)


@njit(cache=True, inline="always")
def _infer_row(Z, i, gamma, beta, running_mean, inv_std, act_code, A):
    t = A.dtype.type
    for j in range(Z.shape[1]):
        x_hat = (Z[i, j] - running_mean[j]) * t(inv_std[j])
        A[i, j] = activate(gamma[j] * x_hat + beta[j], act_code)


@njit(cache=True)
def _bn_infer_serial(Z, gamma, beta, running_mean, inv_std, act_code, A):
    for i in range(Z.shape[0]):
        _infer_row(Z, i, gamma, beta, running_mean, inv_std, act_code, A)


@njit(cache=True, parallel=True)
def _bn_infer_parallel(Z, gamma, beta, running_mean, inv_std, act_code, A):
    for i in prange(Z.shape[0]):
        _infer_row(Z, i, gamma, beta, running_mean, inv_std, act_code, A)


@njit(cache=True)
def batchnorm_forward_infer(Z, gamma, beta, running_mean, running_var, eps, act_code,
                            inv_std, A):
    """Inference forward: ``A = act(gamma * (Z - running_mean) * inv_std + beta)``.

    Z (n, d) read; gamma, beta, running_mean, running_var (d,) read; eps float > 0;
    act_code int; inv_std (d,) float64 written with ``1/sqrt(running_var + eps)``;
    A (n, d) written (may be Z itself).

    Notes: elementwise after a per-feature pass; parallel over rows for large Z; the
    same bits for any thread count.
    """
    for j in range(Z.shape[1]):
        inv_std[j] = 1.0 / math.sqrt(running_var[j] + eps)
    if Z.size >= PARALLEL_MIN_SIZE:
        _bn_infer_parallel(Z, gamma, beta, running_mean, inv_std, act_code, A)
    else:
        _bn_infer_serial(Z, gamma, beta, running_mean, inv_std, act_code, A)


@njit(cache=True, inline="always")
def _backward_chunk(Z, A, dA, gamma, beta, mean, inv_std, act_code, c, dZ, dgamma, dbeta,
                    scratch):
    n, d = Z.shape
    j0 = c * CHUNK_COLS
    j1 = min(d, j0 + CHUNK_COLS)
    w = j1 - j0
    t = dZ.dtype.type
    mf = np.empty(w, dZ.dtype)
    sf = np.empty(w, dZ.dtype)
    gf = np.empty(w, dZ.dtype)
    bf = np.empty(w, dZ.dtype)
    s0 = np.zeros(w)  # float64 sums of dY and dY * X_hat, each column in row order
    s1 = np.zeros(w)
    for k in range(w):
        j = j0 + k
        mf[k] = t(mean[j])
        sf[k] = t(inv_std[j])
        gf[k] = gamma[j]
        bf[k] = beta[j]
    if act_code == ACT_IDENTITY:
        # dY = dA: no need to store it, the second pass reads dA again.
        for i in range(n):
            zr = Z[i, j0:j1]
            gr = dA[i, j0:j1]
            for k in range(w):
                x_hat = (zr[k] - mf[k]) * sf[k]
                dy = gr[k]
                s0[k] += dy
                s1[k] += dy * x_hat
    else:
        for i in range(n):
            zr = Z[i, j0:j1]
            gr = dA[i, j0:j1]
            ar = A[i, j0:j1]
            dr = dZ[i, j0:j1]
            for k in range(w):
                x_hat = (zr[k] - mf[k]) * sf[k]
                dy = gr[k] * activate_grad(gf[k] * x_hat + bf[k], ar[k], act_code)
                dr[k] = dy
                s0[k] += dy
                s1[k] += dy * x_hat
    src = dZ if act_code != ACT_IDENTITY else dA
    m0 = np.empty(w, dZ.dtype)
    m1 = np.empty(w, dZ.dtype)
    scl = np.empty(w, dZ.dtype)
    for k in range(w):
        j = j0 + k
        dbeta[j] = s0[k]
        dgamma[j] = s1[k]
        scratch[0, j] = s0[k] / n  # dbeta / m and dgamma / m
        scratch[1, j] = s1[k] / n
        m0[k] = t(s0[k] / n)
        m1[k] = t(s1[k] / n)
        scl[k] = t(gamma[j] * inv_std[j])
    for i in range(n):
        zr = Z[i, j0:j1]
        yr = src[i, j0:j1]
        dr = dZ[i, j0:j1]
        for k in range(w):
            x_hat = (zr[k] - mf[k]) * sf[k]
            dr[k] = scl[k] * (yr[k] - m0[k] - x_hat * m1[k])


@njit(cache=True)
def _bn_backward_serial(Z, A, dA, gamma, beta, mean, inv_std, act_code, dZ, dgamma, dbeta,
                        scratch):
    for c in range(n_chunks(Z.shape[1])):
        _backward_chunk(Z, A, dA, gamma, beta, mean, inv_std, act_code, c, dZ, dgamma, dbeta,
                        scratch)


@njit(cache=True, parallel=True)
def _bn_backward_parallel(Z, A, dA, gamma, beta, mean, inv_std, act_code, dZ, dgamma, dbeta,
                          scratch):
    for c in prange(n_chunks(Z.shape[1])):
        _backward_chunk(Z, A, dA, gamma, beta, mean, inv_std, act_code, c, dZ, dgamma, dbeta,
                        scratch)


@njit(cache=True)
def batchnorm_backward(Z, A, dA, gamma, beta, mean, inv_std, act_code, dZ, dgamma, dbeta,
                       scratch):
    """Backward of ``batchnorm_forward_train``: dZ, dgamma and dbeta.

    With X_hat = (Z - mean) * inv_std and dY = dA * act'(gamma * X_hat + beta):
    ``dbeta = sum_i dY``, ``dgamma = sum_i dY * X_hat``,
    ``dZ = gamma * inv_std * (dY - dbeta/m - X_hat * dgamma/m)``, m = Z.shape[0].

    Z (n, d) read (the forward's input); A (n, d) read (the forward's output, used by
    the activation derivative); dA (n, d) read; gamma, beta (d,) read; mean, inv_std
    (d,) float64 read (from the training forward); act_code int (the forward's);
    dZ (n, d) written (may be dA itself); dgamma, dbeta (d,) written;
    scratch (2, d) float64 written.

    Notes: two passes over each column chunk (sums, then dZ); parallel over chunks for
    large Z, each column summed in row order: the same bits for any thread count.
    """
    if Z.size >= PARALLEL_MIN_SIZE:
        _bn_backward_parallel(Z, A, dA, gamma, beta, mean, inv_std, act_code, dZ, dgamma,
                              dbeta, scratch)
    else:
        _bn_backward_serial(Z, A, dA, gamma, beta, mean, inv_std, act_code, dZ, dgamma,
                            dbeta, scratch)
