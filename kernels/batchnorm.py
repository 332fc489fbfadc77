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

Parallelism and determinism: the statistics and the backward's sums are taken over
row blocks of ``STAT_ROWS`` rows (fixed, whatever the thread count): each block's
float64 column sums (row order) go to their own scratch row and the blocks are
folded in block order; the variance combines per-block means and squared deviations
(Chan et al.), so no one-pass E[x^2] - E[x]^2. Blocks run in parallel (prange), the
elementwise passes are parallel over rows; every result is the same bits for any
thread count and for the serial and parallel variants. The inner loops run over a
row's contiguous columns into float64 accumulator rows (acc[k] += z[k]): elementwise,
so LLVM vectorizes them without reordering any column's sum (no fastmath).
"""
import math

import numpy as np
from numba import njit, prange

from ._reduce import PARALLEL_MIN_SIZE, fold_blocks
from .activations import ACT_IDENTITY, ACT_RELU, activate, activate_grad

#: Rows per statistics block: each block's column sums (row order) go to their own
#: scratch row and the blocks are folded in order, whatever the thread count. A change
#: changes result bits.
STAT_ROWS = 128


@njit(cache=True)
def _n_stat_blocks(n):
    return (n + STAT_ROWS - 1) // STAT_ROWS


@njit(cache=True, inline="always")
def _sum_rows(Z, b, out):
    # out[k] = sum of Z[i, k] over block b's rows, in row order, float64. The inner loop
    # is elementwise over contiguous columns (out[k] += z[k]), so it vectorizes without
    # reordering any column's sum.
    n, d = Z.shape
    for k in range(d):
        out[k] = 0.0
    for i in range(b * STAT_ROWS, min(n, (b + 1) * STAT_ROWS)):
        zr = Z[i]
        for k in range(d):
            out[k] += zr[k]


@njit(cache=True, inline="always")
def _block_stats(Z, b, s_out, mu_out, m2_out):
    # Block b: column sums s (row order), block means mu = s / rows and the sums of
    # squared deviations from mu, m2 (row order): a second pass over the block while
    # it is still in cache (STAT_ROWS rows).
    n, d = Z.shape
    r0 = b * STAT_ROWS
    r1 = min(n, r0 + STAT_ROWS)
    _sum_rows(Z, b, s_out)
    for k in range(d):
        mu_out[k] = s_out[k] / (r1 - r0)
        m2_out[k] = 0.0
    for i in range(r0, r1):
        zr = Z[i]
        for k in range(d):
            dev = zr[k] - mu_out[k]
            m2_out[k] += dev * dev


@njit(cache=True, inline="always")
def _combine_stats(n, nb, part, mu, acc):
    # mean = (sum of block sums, in block order) / n; n * var = sum_b m2_b +
    # sum_b rows_b * (mu_b - mean)^2, in block order (Chan et al.'s pairwise update,
    # exact in exact arithmetic, no E[x^2] - E[x]^2 cancellation).
    d = mu.shape[0]
    fold_blocks(part[0:nb], acc)
    for k in range(d):
        mu[k] = acc[k] / n
        acc[k] = 0.0
    for b in range(nb):
        rows = min(n, (b + 1) * STAT_ROWS) - b * STAT_ROWS
        for k in range(d):
            dm = part[nb + b, k] - mu[k]
            acc[k] += part[2 * nb + b, k] + rows * (dm * dm)


@njit(cache=True, inline="always")
def _norm_row(Z, i, mf, sf, gf, bf, act_code, A):
    t = A.dtype.type
    zr = Z[i]
    ar = A[i]
    d = zr.shape[0]
    if act_code == ACT_IDENTITY:
        for k in range(d):
            ar[k] = gf[k] * ((zr[k] - mf[k]) * sf[k]) + bf[k]
    elif act_code == ACT_RELU:
        for k in range(d):
            y = gf[k] * ((zr[k] - mf[k]) * sf[k]) + bf[k]
            ar[k] = y if y > 0 else t(0.0)
    else:
        for k in range(d):
            ar[k] = activate(gf[k] * ((zr[k] - mf[k]) * sf[k]) + bf[k], act_code)


@njit(cache=True, inline="always")
def _finish_stats(n, acc, mu, gamma, beta, running_mean, running_var, momentum, eps,
                  mean, inv_std, mf, sf, gf, bf):
    t = mf.dtype.type
    keep = momentum
    for j in range(acc.shape[0]):
        var = acc[j] / n
        m = mu[j]
        s = 1.0 / math.sqrt(var + eps)
        mean[j] = m
        inv_std[j] = s
        running_mean[j] = keep * running_mean[j] + (1.0 - keep) * m
        running_var[j] = keep * running_var[j] + (1.0 - keep) * var
        mf[j] = t(m)
        sf[j] = t(s)
        gf[j] = gamma[j]
        bf[j] = beta[j]


@njit(cache=True)
def _bn_train_serial(Z, gamma, beta, running_mean, running_var, momentum, eps, act_code,
                     mean, inv_std, A):
    n, d = Z.shape
    nb = _n_stat_blocks(n)
    part = np.empty((3 * nb, d))
    acc = np.empty(d)
    mu = np.empty(d)
    for b in range(nb):
        _block_stats(Z, b, part[b], part[nb + b], part[2 * nb + b])
    _combine_stats(n, nb, part, mu, acc)
    mf, sf = np.empty(d, A.dtype), np.empty(d, A.dtype)
    gf, bf = np.empty(d, A.dtype), np.empty(d, A.dtype)
    _finish_stats(n, acc, mu, gamma, beta, running_mean, running_var, momentum, eps,
                  mean, inv_std, mf, sf, gf, bf)
    for i in range(n):
        _norm_row(Z, i, mf, sf, gf, bf, act_code, A)


@njit(cache=True, parallel=True)
def _bn_train_parallel(Z, gamma, beta, running_mean, running_var, momentum, eps, act_code,
                       mean, inv_std, A):
    n, d = Z.shape
    nb = _n_stat_blocks(n)
    part = np.empty((3 * nb, d))
    acc = np.empty(d)
    mu = np.empty(d)
    for b in prange(nb):
        _block_stats(Z, b, part[b], part[nb + b], part[2 * nb + b])
    _combine_stats(n, nb, part, mu, acc)
    mf, sf = np.empty(d, A.dtype), np.empty(d, A.dtype)
    gf, bf = np.empty(d, A.dtype), np.empty(d, A.dtype)
    _finish_stats(n, acc, mu, gamma, beta, running_mean, running_var, momentum, eps,
                  mean, inv_std, mf, sf, gf, bf)
    for i in prange(n):
        _norm_row(Z, i, mf, sf, gf, bf, act_code, A)


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
    likewise: eps keeps inv_std finite. Parallel over row blocks of fixed size for
    large Z, folded in block order: the same bits for any thread count.
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
def _bwd_sums_rows(Z, A, dA, dZ, b, mf, sf, gf, bf, act_code, out0, out1):
    # Block b's float64 sums of dY and dY * X_hat, row order; stores dY in dZ unless
    # the activation is the identity (then the second pass reads dA again).
    n, d = Z.shape
    for k in range(d):
        out0[k] = 0.0
        out1[k] = 0.0
    for i in range(b * STAT_ROWS, min(n, (b + 1) * STAT_ROWS)):
        zr = Z[i]
        gr = dA[i]
        if act_code == ACT_IDENTITY:
            for k in range(d):
                x_hat = (zr[k] - mf[k]) * sf[k]
                dy = gr[k]
                out0[k] += dy
                out1[k] += dy * x_hat
        else:
            ar = A[i]
            dr = dZ[i]
            for k in range(d):
                x_hat = (zr[k] - mf[k]) * sf[k]
                dy = gr[k] * activate_grad(gf[k] * x_hat + bf[k], ar[k], act_code)
                dr[k] = dy
                out0[k] += dy
                out1[k] += dy * x_hat


@njit(cache=True, inline="always")
def _bwd_row(Z, src, i, mf, sf, scl, m0, m1, dZ):
    zr = Z[i]
    yr = src[i]
    dr = dZ[i]
    for k in range(zr.shape[0]):
        x_hat = (zr[k] - mf[k]) * sf[k]
        dr[k] = scl[k] * (yr[k] - m0[k] - x_hat * m1[k])


@njit(cache=True, inline="always")
def _bwd_prep(gamma, beta, mean, inv_std, mf, sf, gf, bf):
    t = mf.dtype.type
    for j in range(mf.shape[0]):
        mf[j] = t(mean[j])
        sf[j] = t(inv_std[j])
        gf[j] = gamma[j]
        bf[j] = beta[j]


@njit(cache=True, inline="always")
def _bwd_finish(n, gamma, inv_std, s0, s1, dgamma, dbeta, scratch, scl, m0, m1):
    t = m0.dtype.type
    for j in range(s0.shape[0]):
        dbeta[j] = s0[j]
        dgamma[j] = s1[j]
        scratch[0, j] = s0[j] / n  # dbeta / m and dgamma / m
        scratch[1, j] = s1[j] / n
        m0[j] = t(s0[j] / n)
        m1[j] = t(s1[j] / n)
        scl[j] = t(gamma[j] * inv_std[j])


@njit(cache=True)
def _bn_backward_serial(Z, A, dA, gamma, beta, mean, inv_std, act_code, dZ, dgamma, dbeta,
                        scratch):
    n, d = Z.shape
    nb = _n_stat_blocks(n)
    f = dZ.dtype
    mf, sf, gf, bf = np.empty(d, f), np.empty(d, f), np.empty(d, f), np.empty(d, f)
    _bwd_prep(gamma, beta, mean, inv_std, mf, sf, gf, bf)
    part = np.empty((2 * nb, d))
    for b in range(nb):
        _bwd_sums_rows(Z, A, dA, dZ, b, mf, sf, gf, bf, act_code, part[b], part[nb + b])
    s0, s1 = np.empty(d), np.empty(d)
    fold_blocks(part[0:nb], s0)
    fold_blocks(part[nb:2 * nb], s1)
    scl, m0, m1 = np.empty(d, f), np.empty(d, f), np.empty(d, f)
    _bwd_finish(n, gamma, inv_std, s0, s1, dgamma, dbeta, scratch, scl, m0, m1)
    src = dZ if act_code != ACT_IDENTITY else dA
    for i in range(n):
        _bwd_row(Z, src, i, mf, sf, scl, m0, m1, dZ)


@njit(cache=True, parallel=True)
def _bn_backward_parallel(Z, A, dA, gamma, beta, mean, inv_std, act_code, dZ, dgamma, dbeta,
                          scratch):
    n, d = Z.shape
    nb = _n_stat_blocks(n)
    f = dZ.dtype
    mf, sf, gf, bf = np.empty(d, f), np.empty(d, f), np.empty(d, f), np.empty(d, f)
    _bwd_prep(gamma, beta, mean, inv_std, mf, sf, gf, bf)
    part = np.empty((2 * nb, d))
    for b in prange(nb):
        _bwd_sums_rows(Z, A, dA, dZ, b, mf, sf, gf, bf, act_code, part[b], part[nb + b])
    s0, s1 = np.empty(d), np.empty(d)
    fold_blocks(part[0:nb], s0)
    fold_blocks(part[nb:2 * nb], s1)
    scl, m0, m1 = np.empty(d, f), np.empty(d, f), np.empty(d, f)
    _bwd_finish(n, gamma, inv_std, s0, s1, dgamma, dbeta, scratch, scl, m0, m1)
    src = dZ if act_code != ACT_IDENTITY else dA
    for i in prange(n):
        _bwd_row(Z, src, i, mf, sf, scl, m0, m1, dZ)


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

    Notes: two passes (block sums folded in block order, then dZ); parallel over row
    blocks, then rows, for large Z: the same bits for any thread count.
    """
    if Z.size >= PARALLEL_MIN_SIZE:
        _bn_backward_parallel(Z, A, dA, gamma, beta, mean, inv_std, act_code, dZ, dgamma,
                              dbeta, scratch)
    else:
        _bn_backward_serial(Z, A, dA, gamma, beta, mean, inv_std, act_code, dZ, dgamma,
                            dbeta, scratch)
