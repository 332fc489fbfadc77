"""Sums over the batch in fixed row blocks, folded in order.

A float sum split across threads depends on how the rows are split. Here the rows are
cut into blocks of a fixed size whatever the thread count, each block's partial sums go
to its own scratch row, and the blocks are folded serially in block order, so the sums
are the same bits for 1 or 2 threads and for the serial and parallel builds.
``column_sums`` and the dense layer's bias gradient use blocks of ``BLOCK_ROWS`` rows
(``n_blocks``) and ``fold_blocks``; BatchNorm its own blocks of ``STAT_ROWS`` rows and
``fold_rows``. Losses sum their per-row values with ``ordered_sum``.
"""
from numba import njit, prange

from ._parallel import BLOCK_ROWS, PARALLEL_MIN_SIZE, serial_and_parallel


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


@njit(cache=True, inline="always")
def fold_rows(scratch, out):
    """``fold_blocks`` into a float64 ``out``, row by row: the same bits (each column is
    0.0 plus the blocks in block order), and the loop over columns vectorizes.

    scratch (n_blocks, d) float64 read; out (d,) float64 written.

    Notes: ``fold_blocks`` goes column by column because its out may be float32 (the sum
    is kept in a float64 register and rounded once); row by row it would round at every
    block. BatchNorm folds into float64 scratch rows, where this is 13x faster (the two
    folds of a (4096, 1024) backward, 32 blocks: 8.5 us against 115 us).
    """
    for k in range(out.shape[0]):
        out[k] = 0.0
    for blk in range(scratch.shape[0]):
        row = scratch[blk]
        for k in range(out.shape[0]):
            out[k] += row[k]


def _column_sums(X, scratch, out):
    for blk in prange(scratch.shape[0]):
        _column_sums_block(X, blk, scratch)
    fold_blocks(scratch, out)


_column_sums_serial, _column_sums_parallel = serial_and_parallel(_column_sums)


@njit(cache=True)
def column_sums(X, scratch, out, parallel=True):
    """Column sums of a batch: ``out[j] = sum_i X[i, j]``.

    X (n, d) read; scratch (n_blocks(n), d) float64 written; out (d,) written.
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.

    Notes: parallel over row blocks for large X; the same bits for any thread count
    and for the serial and parallel builds.
    """
    if parallel is not None:
        if parallel and X.size >= PARALLEL_MIN_SIZE:
            _column_sums_parallel(X, scratch, out)
            return
    _column_sums_serial(X, scratch, out)


@njit(cache=True)
def ordered_sum(values):
    """Sum of a 1-D array in index order, accumulated in float64."""
    acc = 0.0
    for i in range(values.shape[0]):
        acc += values[i]
    return acc
