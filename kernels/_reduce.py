"""Sums over the batch in fixed row blocks, folded in order.

A float sum split across threads depends on how the rows are split. Here the rows
are cut into blocks of ``BLOCK_ROWS`` whatever the thread count, each block's partial
sums go to its own scratch row, and the blocks are folded serially in order, so db,
dgamma, dbeta, batch statistics and losses are the same bits for 1 or 2 threads.
"""
import numpy as np
from numba import njit, prange

#: Rows per block. 64 lets a batch of 256 split into four parallel blocks; a change
#: changes result bits, so it is fixed here once.
BLOCK_ROWS = 64

#: Element count from which kernels take their parallel variant. Below it the
#: thread launch (about 10 us here) costs more than it saves.
PARALLEL_MIN_SIZE = 1 << 16


@njit(cache=True)
def n_blocks(n_rows):
    """Number of row blocks, and so the scratch rows, for ``n_rows`` rows."""
    return (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS


@njit(cache=True, inline="always")
def _column_sums_block(X, blk, scratch):
    n, d = X.shape
    for j in range(d):
        scratch[blk, j] = 0.0
    for i in range(blk * BLOCK_ROWS, min(n, (blk + 1) * BLOCK_ROWS)):
        for j in range(d):
            scratch[blk, j] += X[i, j]


@njit(cache=True, inline="always")
def fold_blocks(scratch, out):
    """out[j] = sum over blocks of scratch[blk, j], folded in block order.

    scratch (n_blocks, d) float64 read; out (d,) written (cast to its dtype).
    """
    for j in range(out.shape[0]):
        acc = 0.0  # float64: float32 lost digits summing 60k rows
        for blk in range(scratch.shape[0]):
            acc += scratch[blk, j]
        out[j] = acc


@njit(cache=True)
def _column_sums_serial(X, scratch, out):
    for blk in range(scratch.shape[0]):
        _column_sums_block(X, blk, scratch)
    fold_blocks(scratch, out)


@njit(cache=True, parallel=True)
def _column_sums_parallel(X, scratch, out):
    for blk in prange(scratch.shape[0]):
        _column_sums_block(X, blk, scratch)
    fold_blocks(scratch, out)


@njit(cache=True)
def column_sums(X, scratch, out):
    """Column sums of a batch: ``out[j] = sum_i X[i, j]``.

    X (n, d) read; scratch (n_blocks(n), d) float64 written; out (d,) written.

    Notes: parallel over row blocks for large X; the same bits for any thread count
    and for the serial and parallel variants.
    """
    if X.size >= PARALLEL_MIN_SIZE:
        _column_sums_parallel(X, scratch, out)
    else:
        _column_sums_serial(X, scratch, out)


@njit(cache=True)
def ordered_sum(values):
    """Sum of a 1-D array in index order, accumulated in float64."""
    acc = 0.0
    for i in range(values.shape[0]):
        acc += values[i]
    return acc
