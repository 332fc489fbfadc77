"""Inverted dropout with masks from a counter-based hash.

Forward:  mask = u < keep_prob with u = uniform_from_counter(seed, step, i * d + j),
          out = X * mask / keep_prob   (expected activation unchanged).
Backward: dX = dA * mask / keep_prob.

The mask is a ``bool`` array of X's shape (one byte per element): it is what backward
reads, so backward never recomputes the hash.
"""
from numba import njit, prange

from ._parallel import PARALLEL_MIN_SIZE, serial_and_parallel
from ._random import uniform_from_counter


@njit(cache=True, inline="always")
def _forward_row(X, i, keep_prob, seed, step, mask, out):
    d = X.shape[1]
    scale = out.dtype.type(1.0 / keep_prob)
    zero = out.dtype.type(0.0)
    base = i * d
    for j in range(d):
        keep = uniform_from_counter(seed, step, base + j) < keep_prob
        mask[i, j] = keep
        out[i, j] = X[i, j] * scale if keep else zero


@njit(cache=True, inline="always")
def _backward_row(dA, i, mask, keep_prob, dX):
    scale = dX.dtype.type(1.0 / keep_prob)
    zero = dX.dtype.type(0.0)
    for j in range(dA.shape[1]):
        dX[i, j] = dA[i, j] * scale if mask[i, j] else zero


def _dropout_forward(X, keep_prob, seed, step, mask, out):
    for i in prange(X.shape[0]):
        _forward_row(X, i, keep_prob, seed, step, mask, out)


_dropout_forward_serial, _dropout_forward_parallel = serial_and_parallel(_dropout_forward)


def _dropout_backward(dA, mask, keep_prob, dX):
    for i in prange(dA.shape[0]):
        _backward_row(dA, i, mask, keep_prob, dX)


_dropout_backward_serial, _dropout_backward_parallel = \
    serial_and_parallel(_dropout_backward)


@njit(cache=True)
def dropout_forward(X, keep_prob, seed, step, mask, out, parallel=True):
    """Inverted dropout: ``out = X * mask / keep_prob``, ``mask = u < keep_prob``.

    X (n, d) read; keep_prob float in (0, 1]; seed, step int >= 0 (the element at row
    i, column j draws ``uniform_from_counter(seed, step, i * d + j)``); mask (n, d) bool
    written (True = kept); out (n, d) written (may be X itself). X and out share a dtype.
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.

    Notes: parallel over rows from ``PARALLEL_MIN_SIZE`` elements; each element's draw
    depends only on (seed, step, index), so the same bits for any thread count.
    """
    if parallel is not None:
        if parallel and X.size >= PARALLEL_MIN_SIZE:
            _dropout_forward_parallel(X, keep_prob, seed, step, mask, out)
            return
    _dropout_forward_serial(X, keep_prob, seed, step, mask, out)


@njit(cache=True)
def dropout_backward(dA, mask, keep_prob, dX, parallel=True):
    """``dX = dA * mask / keep_prob``: the same mask as the forward pass.

    dA (n, d) read; mask (n, d) bool read (from ``dropout_forward``); keep_prob float;
    dX (n, d) written (may be dA itself).
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.

    Notes: elementwise, parallel over rows for large inputs; the same bits for any
    thread count.
    """
    if parallel is not None:
        if parallel and dA.size >= PARALLEL_MIN_SIZE:
            _dropout_backward_parallel(dA, mask, keep_prob, dX)
            return
    _dropout_backward_serial(dA, mask, keep_prob, dX)
