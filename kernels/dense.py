"""Dense layer: BLAS GEMM plus one fused elementwise pass, forward and backward.

Forward:  Z = X @ W + b,  A = act(Z).
Backward: dZ = dA * act'(Z),  db = sum_rows dZ,
          dW = X.T @ dZ + (l2/m) W + (l1/m) sign(W),  dX = dZ @ W.T,
with m = X.shape[0], the examples in the mini-batch. This is the one place where
regularization enters the gradient; ``weight_penalty`` holds the matching cost term.
"""
import numpy as np
from numba import njit, prange

from ._parallel import BLOCK_ROWS, PARALLEL_MIN_SIZE, ROW_CHUNK, serial_and_parallel
from ._reduce import fold_blocks
from .bf16 import gemm_bf16
from .blas import gemm
from .activations import ACT_IDENTITY, activate, activate_grad


@njit(cache=True, inline="always")
def _bias_act_row(z_row, b, act_code, a_row):
    if b.shape[0] != 0:
        for j in range(z_row.shape[0]):
            z = z_row[j] + b[j]
            z_row[j] = z
            a_row[j] = activate(z, act_code)
    else:
        for j in range(z_row.shape[0]):
            a_row[j] = activate(z_row[j], act_code)


# Rows lo:hi, compiled once and called by both builds of _bias_act: the parallel build's
# loop body is then one call, which compiles in half the time of the rows inlined there
# (2.4 s to 1.2 s on a cold start; the parfor machinery copies and compiles its body
# several times), and runs as fast (one call per ROW_CHUNK rows).
@njit(cache=True, no_cfunc_wrapper=True)
def _bias_act_rows(Z, b, act_code, A, lo, hi):
    for i in range(lo, hi):
        _bias_act_row(Z[i], b, act_code, A[i])


def _bias_act(Z, b, act_code, A):
    n = Z.shape[0]
    nc = (n + ROW_CHUNK - 1) // ROW_CHUNK
    for c in prange(nc):
        _bias_act_rows(Z, b, act_code, A, c * ROW_CHUNK, min(n, (c + 1) * ROW_CHUNK))


_bias_act_serial, _bias_act_parallel = serial_and_parallel(_bias_act)


@njit(cache=True)
def dense_forward(X, W, b, act_code, Z, A, parallel=True, bf16=None):
    """A = act(X @ W + b), keeping the pre-activation Z for backward.

    X (n, k) read; W (k, m) read; b (m,) read, or shape (0,) for no bias;
    act_code int (``kernels.ACT_*``); Z (n, m) written; A (n, m) written (may be Z
    when act_code is ``ACT_IDENTITY``). All float arrays share one dtype; Z C-contiguous.
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements
    (of Z); None never does and leaves it uncompiled. bf16: None (default) for the
    float32/float64 GEMM; True for ``kernels.bf16.gemm_bf16`` (float32 arrays only: X
    and W rounded to bfloat16, products summed in float32). None leaves gemm_bf16
    uncompiled.

    Notes: GEMM by BLAS (``kernels.blas.gemm``), then one pass parallel over rows for large
    outputs; elementwise only, so the same bits for any Numba thread count.
    """
    # np.bool_: a plain bool, not a literal, so that the three calls here share one
    # compiled gemm (a literal True or False compiles a signature of its own).
    if bf16 is not None:   # pruned by Numba when bf16 is None
        gemm_bf16(X, W, Z, np.bool_(False), np.bool_(False), 1.0, 0.0)
    else:
        gemm(X, W, Z, np.bool_(False), np.bool_(False), 1.0, 0.0)
    if parallel is not None:
        if parallel and Z.size >= PARALLEL_MIN_SIZE:
            _bias_act_parallel(Z, b, act_code, A)
            return
    _bias_act_serial(Z, b, act_code, A)


@njit(cache=True, inline="always")
def _grad_block(Z, A, dA, act_code, blk, dZ, scratch, with_bias):
    n, d = Z.shape
    if with_bias:
        for j in range(d):
            scratch[blk, j] = 0.0
    for i in range(blk * BLOCK_ROWS, min(n, (blk + 1) * BLOCK_ROWS)):
        for j in range(d):
            g = dA[i, j] * activate_grad(Z[i, j], A[i, j], act_code)
            dZ[i, j] = g
            if with_bias:
                scratch[blk, j] += g


def _grad(Z, A, dA, act_code, dZ, scratch, with_bias):
    for blk in prange(scratch.shape[0]):
        _grad_block(Z, A, dA, act_code, blk, dZ, scratch, with_bias)


_grad_serial, _grad_parallel = serial_and_parallel(_grad)


@njit(cache=True, inline="always")
def _penalty_cost(sq, ab, l2, l1, m):
    """(l2 / (2 m)) sum W^2 + (l1 / m) sum |W|, from the two sums."""
    return l2 / (2.0 * m) * sq + l1 / m * ab


@njit(cache=True, inline="always")
def _add_penalty_grad(W, l2_over_m, l1_over_m, dW):
    """dW += (l2/m) W + (l1/m) sign(W): elementwise and branch-free, so it vectorizes."""
    l2_ = dW.dtype.type(l2_over_m)
    l1_ = dW.dtype.type(l1_over_m)
    one = dW.dtype.type(1.0)
    zero = dW.dtype.type(0.0)
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            w = W[i, j]
            sign = (one if w > zero else zero) - (one if w < zero else zero)
            dW[i, j] = (dW[i, j] + l2_ * w) + l1_ * sign  # the order of the old branches


# Not inlined: the reassociation allowed here must not reach the caller's arithmetic.
@njit(cache=True, fastmath={"reassoc"})
def _penalty_sums(W):
    """(sum W^2, sum |W|) in float64.

    The compiler may reassociate these two sums (and only these): it then keeps them in
    vector registers, 3.4x faster than the scalar chains of a fixed order (0.17 ms to
    0.05 ms for a 784 x 500 W on an AMD EPYC), which made L2 cost 10% of a step. The
    order it picks is fixed at compile time and serial: the same bits on every call and
    for any thread count (not necessarily across CPUs with other vector widths).
    """
    sq = 0.0
    ab = 0.0
    for i in range(W.shape[0]):
        row = W[i]
        for j in range(W.shape[1]):
            x = np.float64(row[j])
            sq += x * x
            ab += abs(x)
    return sq, ab


@njit(cache=True, inline="always")
def grad_and_bias(Z, A, dA, act_code, dZ, db, scratch, parallel):
    """dZ = dA * act'(Z) and db = sum_rows dZ (db of shape (0,): no bias), one pass over
    fixed row blocks folded in order; dense_backward's and the CSR layer's first step."""
    with_bias = db.shape[0] != 0
    # Identity without bias into dZ aliasing dA has nothing to do.
    if act_code != ACT_IDENTITY or with_bias or dZ.ctypes.data != dA.ctypes.data:
        if parallel is not None:
            if parallel and Z.size >= PARALLEL_MIN_SIZE:
                _grad_parallel(Z, A, dA, act_code, dZ, scratch, with_bias)
            else:
                _grad_serial(Z, A, dA, act_code, dZ, scratch, with_bias)
        else:
            _grad_serial(Z, A, dA, act_code, dZ, scratch, with_bias)
    if with_bias:
        fold_blocks(scratch, db)


@njit(cache=True)
def dense_backward(X, W, Z, A, dA, act_code, l2, l1, dZ, dW, db, dX, scratch,
                   parallel=True, bf16=None):
    """Gradients of a dense layer: dZ, db, dW (with the L2 and L1 terms) and dX.

    X (n, k) read; W (k, m) read; Z, A (n, m) read (from ``dense_forward``); dA (n, m)
    read; act_code int; l2, l1 float (lambda of each penalty, >= 0); dZ (n, m) written
    (may be dA itself); dW (k, m) written; db (m,) written, or shape (0,) for no bias;
    dX (n, k) written, or shape (0, 0) to skip it (first layer); scratch
    (n_blocks(n), m) float64 written. parallel: True (default) takes the parallel build
    from PARALLEL_MIN_SIZE elements (of Z); None never does and leaves it uncompiled.
    bf16: None (default) or True, as in ``dense_forward``: True computes X.T @ dZ and
    dZ @ W.T with ``gemm_bf16`` (operands rounded to bfloat16; dZ, dW, db and the
    penalty stay in float32).

    Returns the penalty's cost term (``weight_penalty(W, l2, l1, m)``, read on the
    way through W), 0.0 when l2 and l1 are 0.

    Notes: the activation derivative and the bias sum are one pass over fixed row
    blocks (parallel for large inputs, folded in order: the same bits for any thread
    count); then the GEMMs by BLAS.
    """
    m = X.shape[0]
    grad_and_bias(Z, A, dA, act_code, dZ, db, scratch, parallel)
    if bf16 is not None:
        gemm_bf16(X, dZ, dW, np.bool_(True), np.bool_(False), 1.0, 0.0)
    else:
        gemm(X, dZ, dW, np.bool_(True), np.bool_(False), 1.0, 0.0)
    cost = 0.0
    if l2 != 0.0 or l1 != 0.0:
        _add_penalty_grad(W, l2 / m, l1 / m, dW)
        sq, ab = _penalty_sums(W)
        cost = _penalty_cost(sq, ab, l2, l1, m)
    if dX.size != 0:
        if bf16 is not None:
            gemm_bf16(dZ, W, dX, np.bool_(False), np.bool_(True), 1.0, 0.0)
        else:
            gemm(dZ, W, dX, np.bool_(False), np.bool_(True), 1.0, 0.0)
    return cost


@njit(cache=True)
def weight_penalty(W, l2, l1, m):
    """The cost term of the penalties: (l2 / (2 m)) ||W||_F^2 + (l1 / m) sum |W|.

    W (k, n) read; l2, l1 float >= 0; m the examples in the mini-batch. Returns float64.
    """
    if l2 == 0.0 and l1 == 0.0:
        return 0.0
    sq, ab = _penalty_sums(W)  # the sums dense_backward's cost uses
    return _penalty_cost(sq, ab, l2, l1, m)
