"""Batch normalization over the rows of a batch, with an optional fused activation.

Training forward, per feature j over the m rows of Z:
    mean_j = sum_i Z_ij / m,   var_j = sum_i (Z_ij - mean_j)^2 / m   (biased),
    inv_std_j = 1 / sqrt(var_j + eps),   scale_j = gamma_j * inv_std_j,
    A = act((Z - mean) * scale + beta),
    running_mean = momentum * running_mean + (1 - momentum) * mean  (and var likewise).
Inference forward: act(gamma * (Z - running_mean) * inv_std + beta), inv_std from
running_var.
Backward, with X_hat = (Z - mean) * inv_std and dY = dA * act'((Z - mean) * scale + beta):
    dbeta = sum_i dY,   dgamma = inv_std * S,   S = sum_i dY * (Z - mean),
    dZ = scale * (dY - dbeta / m - X_hat * dgamma / m)
       = c_dy * dY + (c_xc * (Z - mean) + c_0),
    c_dy = scale,  c_xc = -scale * inv_std * dgamma / m,  c_0 = -scale * dbeta / m.

Elementwise work runs in Z's dtype with per-feature coefficients computed in float64 and
rounded once (mean, scale, beta, c_dy, c_xc, c_0); the forward's and the backward's
pre-activation (Z - mean) * scale + beta is the same expression, so ReLU's mask in the
backward is the forward's. X_hat is not stored: the backward recomputes Z - mean from Z,
which saves a write of the batch in the forward. Every sum over rows is accumulated in
float64.

Passes over the (n, d) data, each streaming whole rows: forward, one statistics pass then
one normalize pass; backward, one sums pass then one dZ pass. (For activations other
than identity and ReLU the sums pass first stores dY in dZ and the dZ pass reads it
back.) The elementwise passes take chunks of ``ROW_CHUNK`` rows last chunk first, so the
rows the previous pass read last are still in cache. (``ROW_CHUNK`` and ``STAT_ROWS`` are
set, with their reasons, in ``kernels._parallel``.)

Statistics: the rows are cut into blocks of ``STAT_ROWS`` (fixed, whatever the thread
count). One pass over block b (r rows) accumulates in float64 T = sum_i (z_i - K) and
Q = sum_i (z_i - K)^2, K the block's first row, four rows at a time: with e = z - K in
float64, ``(e0 + e1) + (e2 + e3)`` and ``(e0^2 + e1^2) + (e2^2 + e3^2)`` are added to the
block's accumulators in row order (the last r % 4 rows one at a time). Then the block's
sum is s_b = r * K + T and its sum of squared deviations from its mean mu_b = s_b / r is
m2_b = Q - T^2 / r. K is one of the block's values, so (K - mu_b)^2 <= m2_b and
Q <= (r + 1) * m2_b: the subtraction loses at most about log2(r + 1) of float64's 53 bits
(never the catastrophic cancellation of E[x^2] - E[x]^2). The blocks are combined in
block order by Chan et al.'s update: mean = (sum_b s_b) / n,
n * var = sum_b m2_b + sum_b r_b * (mu_b - mean)^2.

Backward sums: the same blocks and four-row groups. A group's dY and dY * (Z - mean_f)
terms (mean_f the mean rounded to Z's dtype) are summed pairwise in Z's dtype and added
in row order into the block's float64 accumulators; then S = sum dY * (Z - mean_f) +
(mean_f - mean) * dbeta, which is sum dY * (Z - mean) in exact arithmetic.

Parallelism and determinism: blocks run in parallel (prange), each writing its own
scratch rows, and are folded serially in block order (``_reduce.fold_rows``); the
elementwise passes are parallel over row chunks. No float sum depends on the thread count
or on the build: every result is the same bits for any thread count and for the serial
and parallel builds. The inner loops run over a row's contiguous columns into per-column
accumulator rows (acc[k] += ...): elementwise, so LLVM vectorizes them without
reordering any column's sum (no fastmath). A vectorized loop runs only after a runtime
check that its arrays do not overlap, so when dZ is dA, or the dZ pass reads dY back from
dZ, the loops read and write that one array (an overlap would select the scalar loop).

Scratch: batchnorm_forward_train and batchnorm_backward take a float64 array of
``batchnorm_scratch_rows(n)`` rows and d columns (per-block rows, folded sums, and the
per-feature coefficients viewed in Z's dtype), so a caller that keeps it allocates
nothing per call.
"""
import math

import numpy as np
from numba import njit, prange

from ._parallel import PARALLEL_MIN_SIZE, ROW_CHUNK, STAT_ROWS, serial_and_parallel
from ._reduce import fold_rows
from .activations import ACT_IDENTITY, ACT_RELU, activate, activate_grad

#: Scratch rows after the 2 * n_blocks block rows: 2 float64 rows of folded sums and
#: 6 rows of per-feature coefficients in Z's dtype.
_EXTRA_ROWS = 8


@njit(cache=True)
def _n_stat_blocks(n):
    return (n + STAT_ROWS - 1) // STAT_ROWS


@njit(cache=True)
def _n_chunks(n):
    return (n + ROW_CHUNK - 1) // ROW_CHUNK


@njit(cache=True)
def batchnorm_scratch_rows(n):
    """Rows of the float64 scratch ``batchnorm_forward_train`` and ``batchnorm_backward``
    take for a batch of n rows: ``2 * ceil(n / STAT_ROWS) + 8`` (d columns)."""
    return 2 * _n_stat_blocks(n) + _EXTRA_ROWS


@njit(cache=True, inline="always")
def _coef(scratch, nb, c, dtype, d):
    # Coefficient row c (0..5) of the scratch, viewed in Z's dtype (float32: the first
    # d of the 2d values a float64 row holds).
    return scratch[2 * nb + 2 + c].view(dtype)[:d]


# --- training forward ---------------------------------------------------------------------

@njit(cache=True, inline="always")
def _block_stats(Z, b, s_out, m2_out):
    # Block b: s_out = its column sums, m2_out = its sums of squared deviations from its
    # mean, via the shifted float64 sums T, Q (module docstring), four rows at a time.
    n, d = Z.shape
    r0 = b * STAT_ROWS
    r1 = min(n, r0 + STAT_ROWS)
    K = Z[r0]
    for k in range(d):
        s_out[k] = 0.0
        m2_out[k] = 0.0
    i = r0
    while i + 3 < r1:
        z0 = Z[i]
        z1 = Z[i + 1]
        z2 = Z[i + 2]
        z3 = Z[i + 3]
        for k in range(d):
            kk = np.float64(K[k])
            e0 = z0[k] - kk
            e1 = z1[k] - kk
            e2 = z2[k] - kk
            e3 = z3[k] - kk
            s_out[k] += (e0 + e1) + (e2 + e3)
            m2_out[k] += (e0 * e0 + e1 * e1) + (e2 * e2 + e3 * e3)
        i += 4
    while i < r1:
        z0 = Z[i]
        for k in range(d):
            e0 = z0[k] - np.float64(K[k])
            s_out[k] += e0
            m2_out[k] += e0 * e0
        i += 1
    r = r1 - r0
    for k in range(d):
        t = s_out[k]
        s_out[k] = r * np.float64(K[k]) + t
        m2_out[k] = max(m2_out[k] - t * (t / r), 0.0)


@njit(cache=True, inline="always")
def _finish_stats(Z, scratch, nb, gamma, beta, running_mean, running_var, momentum, eps,
                  mean, inv_std):
    # Chan's combine of the blocks in block order, then the per-feature outputs and the
    # coefficients of the normalize pass (mean, scale, beta in Z's dtype).
    n, d = Z.shape
    acc = scratch[2 * nb]
    fold_rows(scratch[0:nb], acc)
    for k in range(d):
        mean[k] = acc[k] / n
        acc[k] = 0.0
    for b in range(nb):
        rows = min(n, (b + 1) * STAT_ROWS) - b * STAT_ROWS
        sr = scratch[b]
        mr = scratch[nb + b]
        for k in range(d):
            dm = sr[k] / rows - mean[k]
            acc[k] += mr[k] + rows * (dm * dm)
    t = Z.dtype.type
    mf = _coef(scratch, nb, 0, Z.dtype, d)
    gs = _coef(scratch, nb, 1, Z.dtype, d)
    bf = _coef(scratch, nb, 2, Z.dtype, d)
    keep = momentum
    for k in range(d):
        var = acc[k] / n
        m = mean[k]
        s = 1.0 / math.sqrt(var + eps)
        inv_std[k] = s
        running_mean[k] = keep * running_mean[k] + (1.0 - keep) * m
        running_var[k] = keep * running_var[k] + (1.0 - keep) * var
        mf[k] = t(m)
        gs[k] = t(gamma[k] * s)
        bf[k] = beta[k]


@njit(cache=True, inline="always")
def _norm_row(Z, i, mf, gs, bf, act_code, A):
    t = A.dtype.type
    zr = Z[i]
    ar = A[i]
    d = zr.shape[0]
    if act_code == ACT_IDENTITY:
        for k in range(d):
            ar[k] = (zr[k] - mf[k]) * gs[k] + bf[k]
    elif act_code == ACT_RELU:
        for k in range(d):
            y = (zr[k] - mf[k]) * gs[k] + bf[k]
            ar[k] = y if y > 0 else t(0.0)
    else:
        for k in range(d):
            ar[k] = activate((zr[k] - mf[k]) * gs[k] + bf[k], act_code)


def _bn_train(Z, gamma, beta, running_mean, running_var, momentum, eps, act_code, mean,
              inv_std, A, scratch):
    n, d = Z.shape
    nb = _n_stat_blocks(n)
    for b in prange(nb):
        _block_stats(Z, b, scratch[b], scratch[nb + b])
    _finish_stats(Z, scratch, nb, gamma, beta, running_mean, running_var, momentum, eps,
                  mean, inv_std)
    mf = _coef(scratch, nb, 0, Z.dtype, d)
    gs = _coef(scratch, nb, 1, Z.dtype, d)
    bf = _coef(scratch, nb, 2, Z.dtype, d)
    nc = _n_chunks(n)
    for c in prange(nc):
        for i in range((nc - 1 - c) * ROW_CHUNK, min(n, (nc - c) * ROW_CHUNK)):
            _norm_row(Z, i, mf, gs, bf, act_code, A)


_bn_train_serial, _bn_train_parallel = serial_and_parallel(_bn_train)


@njit(cache=True)
def batchnorm_forward_train(Z, gamma, beta, running_mean, running_var, momentum, eps,
                            act_code, mean, inv_std, A, scratch, parallel=True):
    """Training forward: normalize with the batch statistics, scale, shift, activate.

    ``A = act((Z - mean) * (gamma * inv_std) + beta)`` with the batch mean and
    ``inv_std = 1/sqrt(var + eps)`` of the biased batch variance; then
    ``running = momentum * running + (1 - momentum) * batch`` for mean and variance.

    Z (n, d) read; gamma, beta (d,) read; running_mean, running_var (d,) updated;
    momentum float in [0, 1] (weight of the old value: PyTorch's 0.1 is 0.9 here);
    eps float > 0; act_code int (``kernels.ACT_*``, ``ACT_IDENTITY`` for none);
    mean, inv_std (d,) float64 written (kept for ``batchnorm_backward``);
    A (n, d) written; scratch (``batchnorm_scratch_rows(n)``, d) float64 written.
    Float arrays other than mean, inv_std and scratch share Z's dtype.
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.

    Notes: a single row gives var = 0 and A = act(beta), a zero-variance feature
    likewise: eps keeps inv_std finite. Two passes over Z (statistics, normalize);
    parallel over row blocks of fixed size, then row chunks, for large Z, the blocks
    folded in block order: the same bits for any thread count.
    """
    if parallel is not None:
        if parallel and Z.size >= PARALLEL_MIN_SIZE:
            _bn_train_parallel(Z, gamma, beta, running_mean, running_var, momentum, eps,
                               act_code, mean, inv_std, A, scratch)
            return
    _bn_train_serial(Z, gamma, beta, running_mean, running_var, momentum, eps,
                     act_code, mean, inv_std, A, scratch)


# --- inference forward --------------------------------------------------------------------

@njit(cache=True, inline="always")
def _infer_row(Z, i, gamma, beta, running_mean, inv_std, act_code, A):
    t = A.dtype.type
    for j in range(Z.shape[1]):
        x_hat = (Z[i, j] - running_mean[j]) * t(inv_std[j])
        A[i, j] = activate(gamma[j] * x_hat + beta[j], act_code)


def _bn_infer(Z, gamma, beta, running_mean, inv_std, act_code, A):
    for i in prange(Z.shape[0]):
        _infer_row(Z, i, gamma, beta, running_mean, inv_std, act_code, A)


_bn_infer_serial, _bn_infer_parallel = serial_and_parallel(_bn_infer)


@njit(cache=True)
def batchnorm_forward_infer(Z, gamma, beta, running_mean, running_var, eps, act_code,
                            inv_std, A, parallel=True):
    """Inference forward: ``A = act(gamma * (Z - running_mean) * inv_std + beta)``.

    Z (n, d) read; gamma, beta, running_mean, running_var (d,) read; eps float > 0;
    act_code int; inv_std (d,) float64 written with ``1/sqrt(running_var + eps)``;
    A (n, d) written (may be Z itself).
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.

    Notes: elementwise after a per-feature pass; parallel over rows for large Z; the
    same bits for any thread count.
    """
    for j in range(Z.shape[1]):
        inv_std[j] = 1.0 / math.sqrt(running_var[j] + eps)
    if parallel is not None:
        if parallel and Z.size >= PARALLEL_MIN_SIZE:
            _bn_infer_parallel(Z, gamma, beta, running_mean, inv_std, act_code, A)
            return
    _bn_infer_serial(Z, gamma, beta, running_mean, inv_std, act_code, A)


# --- backward -----------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _dy_general(zr, ar, gr, dr, mf, gs, bf, act_code, in_place):
    # dY of one row for activations other than identity and ReLU, stored in dr. When dr
    # is gr (dZ is dA) the loop reads and writes dr only: LLVM's overlap check between
    # two arrays would fail and run the scalar loop.
    if in_place:
        for k in range(zr.shape[0]):
            y = (zr[k] - mf[k]) * gs[k] + bf[k]
            dr[k] = dr[k] * activate_grad(y, ar[k], act_code)
    else:
        for k in range(zr.shape[0]):
            y = (zr[k] - mf[k]) * gs[k] + bf[k]
            dr[k] = gr[k] * activate_grad(y, ar[k], act_code)


@njit(cache=True, inline="always")
def _bwd_sums_block(Z, A, dA, dZ, b, mf, gs, bf, act_code, in_place, out0, out1):
    # Block b's sums of dY and dY * (Z - mf): four rows at a time, each group's terms
    # summed pairwise in Z's dtype, the groups added in row order into float64 rows.
    # Identity: dY = dA. ReLU: dY = dA where the forward's pre-activation is > 0, else 0.
    # Other activations: dY is stored in dZ first (the dZ pass reads it back).
    n, d = Z.shape
    t = Z.dtype.type
    r0 = b * STAT_ROWS
    r1 = min(n, r0 + STAT_ROWS)
    relu = act_code == ACT_RELU
    for k in range(d):
        out0[k] = 0.0
        out1[k] = 0.0
    src = dA
    if act_code != ACT_IDENTITY and not relu:
        for i in range(r0, r1):
            _dy_general(Z[i], A[i], dA[i], dZ[i], mf, gs, bf, act_code, in_place)
        src = dZ
    i = r0
    while i + 3 < r1:
        z0 = Z[i]
        z1 = Z[i + 1]
        z2 = Z[i + 2]
        z3 = Z[i + 3]
        g0 = src[i]
        g1 = src[i + 1]
        g2 = src[i + 2]
        g3 = src[i + 3]
        if relu:
            for k in range(d):
                m = mf[k]
                x0 = z0[k] - m
                x1 = z1[k] - m
                x2 = z2[k] - m
                x3 = z3[k] - m
                a0 = g0[k]  # loaded unconditionally: the select vectorizes
                a1 = g1[k]
                a2 = g2[k]
                a3 = g3[k]
                y0 = a0 if x0 * gs[k] + bf[k] > 0 else t(0.0)
                y1 = a1 if x1 * gs[k] + bf[k] > 0 else t(0.0)
                y2 = a2 if x2 * gs[k] + bf[k] > 0 else t(0.0)
                y3 = a3 if x3 * gs[k] + bf[k] > 0 else t(0.0)
                out0[k] += (y0 + y1) + (y2 + y3)
                out1[k] += (y0 * x0 + y1 * x1) + (y2 * x2 + y3 * x3)
        else:
            for k in range(d):
                m = mf[k]
                y0 = g0[k]
                y1 = g1[k]
                y2 = g2[k]
                y3 = g3[k]
                out0[k] += (y0 + y1) + (y2 + y3)
                out1[k] += (y0 * (z0[k] - m) + y1 * (z1[k] - m)) + \
                    (y2 * (z2[k] - m) + y3 * (z3[k] - m))
        i += 4
    while i < r1:
        z0 = Z[i]
        g0 = src[i]
        for k in range(d):
            x0 = z0[k] - mf[k]
            a0 = g0[k]
            y0 = a0 if not relu or x0 * gs[k] + bf[k] > 0 else t(0.0)
            out0[k] += y0
            out1[k] += y0 * x0
        i += 1


@njit(cache=True, inline="always")
def _bwd_row(Z, src, i, mf, gs, bf, c_dy, c_xc, c_0, relu, in_place, dZ):
    # dZ = c_dy * dY + (c_xc * (Z - mean) + c_0), in Z's dtype; dY read from src, or
    # from dZ itself when in_place (one array in the loop, so it vectorizes).
    t = Z.dtype.type
    zr = Z[i]
    dr = dZ[i]
    yr = dr if in_place else src[i]
    if in_place and relu:
        for k in range(zr.shape[0]):
            xc = zr[k] - mf[k]
            a = dr[k]
            dy = a if xc * gs[k] + bf[k] > 0 else t(0.0)
            dr[k] = c_dy[k] * dy + (c_xc[k] * xc + c_0[k])
    elif in_place:
        for k in range(zr.shape[0]):
            xc = zr[k] - mf[k]
            dr[k] = c_dy[k] * dr[k] + (c_xc[k] * xc + c_0[k])
    elif relu:
        for k in range(zr.shape[0]):
            xc = zr[k] - mf[k]
            a = yr[k]
            dy = a if xc * gs[k] + bf[k] > 0 else t(0.0)
            dr[k] = c_dy[k] * dy + (c_xc[k] * xc + c_0[k])
    else:
        for k in range(zr.shape[0]):
            xc = zr[k] - mf[k]
            dr[k] = c_dy[k] * yr[k] + (c_xc[k] * xc + c_0[k])


@njit(cache=True, inline="always")
def _bwd_prep(Z, scratch, nb, gamma, beta, mean, inv_std):
    t = Z.dtype.type
    d = Z.shape[1]
    mf = _coef(scratch, nb, 0, Z.dtype, d)
    gs = _coef(scratch, nb, 1, Z.dtype, d)
    bf = _coef(scratch, nb, 2, Z.dtype, d)
    for k in range(d):
        mf[k] = t(mean[k])
        gs[k] = t(gamma[k] * inv_std[k])
        bf[k] = beta[k]


@njit(cache=True, inline="always")
def _bwd_finish(Z, scratch, nb, gamma, mean, inv_std, dgamma, dbeta):
    # Fold the block sums in block order; sum dY * (Z - mean) = sum dY * (Z - mf) +
    # (mf - mean) * sum dY (mf is mean rounded to Z's dtype); the dZ pass coefficients.
    n, d = Z.shape
    t = Z.dtype.type
    s0 = scratch[2 * nb]
    s1 = scratch[2 * nb + 1]
    fold_rows(scratch[0:nb], s0)
    fold_rows(scratch[nb:2 * nb], s1)
    mf = _coef(scratch, nb, 0, Z.dtype, d)
    c_dy = _coef(scratch, nb, 3, Z.dtype, d)
    c_xc = _coef(scratch, nb, 4, Z.dtype, d)
    c_0 = _coef(scratch, nb, 5, Z.dtype, d)
    for k in range(d):
        s = inv_std[k]
        scale = gamma[k] * s
        db = s0[k]
        dg = (s1[k] + (np.float64(mf[k]) - mean[k]) * db) * s
        dbeta[k] = db
        dgamma[k] = dg
        c_dy[k] = t(scale)
        c_xc[k] = t(-scale * s * (dg / n))
        c_0[k] = t(-scale * (db / n))


def _bn_backward(Z, A, dA, gamma, beta, mean, inv_std, act_code, dZ, dgamma, dbeta,
                 scratch):
    n, d = Z.shape
    nb = _n_stat_blocks(n)
    _bwd_prep(Z, scratch, nb, gamma, beta, mean, inv_std)
    mf = _coef(scratch, nb, 0, Z.dtype, d)
    gs = _coef(scratch, nb, 1, Z.dtype, d)
    bf = _coef(scratch, nb, 2, Z.dtype, d)
    same = dZ.ctypes.data == dA.ctypes.data
    for b in prange(nb):
        _bwd_sums_block(Z, A, dA, dZ, b, mf, gs, bf, act_code, same, scratch[b],
                        scratch[nb + b])
    _bwd_finish(Z, scratch, nb, gamma, mean, inv_std, dgamma, dbeta)
    c_dy = _coef(scratch, nb, 3, Z.dtype, d)
    c_xc = _coef(scratch, nb, 4, Z.dtype, d)
    c_0 = _coef(scratch, nb, 5, Z.dtype, d)
    relu = act_code == ACT_RELU
    in_place = same or not (act_code == ACT_IDENTITY or relu)  # dY is in dZ
    nc = _n_chunks(n)
    for c in prange(nc):
        for i in range((nc - 1 - c) * ROW_CHUNK, min(n, (nc - c) * ROW_CHUNK)):
            _bwd_row(Z, dA, i, mf, gs, bf, c_dy, c_xc, c_0, relu, in_place, dZ)


_bn_backward_serial, _bn_backward_parallel = serial_and_parallel(_bn_backward)


@njit(cache=True)
def batchnorm_backward(Z, A, dA, gamma, beta, mean, inv_std, act_code, dZ, dgamma, dbeta,
                       scratch, parallel=True):
    """Backward of ``batchnorm_forward_train``: dZ, dgamma and dbeta.

    With X_hat = (Z - mean) * inv_std and dY = dA * act'((Z - mean) * (gamma * inv_std)
    + beta) (the forward's pre-activation, same expression and rounding):
    ``dbeta = sum_i dY``, ``dgamma = sum_i dY * X_hat``,
    ``dZ = gamma * inv_std * (dY - dbeta/m - X_hat * dgamma/m)``, m = Z.shape[0].

    Z (n, d) read (the forward's input); A (n, d) read (the forward's output, used by
    the derivative of activations other than identity and ReLU); dA (n, d) read; gamma,
    beta (d,) read; mean, inv_std (d,) float64 read (from the training forward);
    act_code int (the forward's); dZ (n, d) written (may be dA itself); dgamma, dbeta
    (d,) written; scratch (``batchnorm_scratch_rows(n)``, d) float64 written.
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.

    Notes: two passes over Z and dA (block sums folded in block order, then dZ);
    parallel over row blocks, then row chunks, for large Z: the same bits for any
    thread count. gamma, beta, mean and inv_std must be the forward's (ReLU's mask is
    recomputed from them).
    """
    if parallel is not None:
        if parallel and Z.size >= PARALLEL_MIN_SIZE:
            _bn_backward_parallel(Z, A, dA, gamma, beta, mean, inv_std, act_code, dZ,
                                  dgamma, dbeta, scratch)
            return
    _bn_backward_serial(Z, A, dA, gamma, beta, mean, inv_std, act_code, dZ, dgamma, dbeta,
                        scratch)
