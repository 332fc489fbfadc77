"""column_sums, n_blocks and ordered_sum against the float64 reference."""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import kernels
import reference as ref

#: Row counts: one partial block, an exact multiple of BLOCK_ROWS, one row, and a
#: parallel-size batch with a partial last block (1100 * 64 >= PARALLEL_MIN_SIZE).
SHAPES = [
    pytest.param((70, 20), id="serial"),
    pytest.param((128, 20), id="serial-whole-blocks"),
    pytest.param((1, 20), id="serial-one-row"),
    pytest.param((1100, 64), id="parallel"),
]


def test_shapes_cover_serial_and_parallel():
    sizes = [p.values[0][0] * p.values[0][1] for p in SHAPES]
    assert max(sizes[:3]) < kernels.PARALLEL_MIN_SIZE <= sizes[3]
    assert 128 % kernels.BLOCK_ROWS == 0 and 1100 % kernels.BLOCK_ROWS != 0


@pytest.mark.parametrize("shape", SHAPES)
def test_column_sums_matches_reference(dtype, rng, tol, shape):
    """Positive-mean data, so float32 accumulation (error ~ n eps32) would fail the
    float32 tolerance of half an ulp of the result."""
    n, d = shape
    X = (rng.random(shape) + 0.1 * rng.standard_normal(shape)).astype(dtype)
    X_in = X.copy()
    scratch = np.full((kernels.n_blocks(n), d), np.nan)
    out = np.full(d, np.nan, dtype)
    kernels.column_sums(X, scratch, out)
    assert_allclose(out, ref.column_sums(X), **tol(dtype, "sum"))
    # each scratch row holds its block's partial sums, in float64
    for blk in range(scratch.shape[0]):
        rows = X[blk * kernels.BLOCK_ROWS:(blk + 1) * kernels.BLOCK_ROWS]
        assert_allclose(scratch[blk], ref.column_sums(rows), **tol(np.float64, "sum"))
    assert_array_equal(X, X_in)


def test_column_sums_accumulates_in_float64():
    """0.1f summed 70000 times: a float32 accumulator is off by ~1e-3 relative."""
    X = np.full((70_000, 1), 0.1, np.float32)
    out = np.zeros(1, np.float32)
    kernels.column_sums(X, np.empty((kernels.n_blocks(70_000), 1)), out)
    assert out[0] == np.float32(70_000 * np.float64(np.float32(0.1)))


@pytest.mark.parametrize("n_rows", [0, 1, 63, 64, 65, 128, 1100, 60_000])
def test_n_blocks_matches_reference(n_rows):
    got = kernels.n_blocks(n_rows)
    assert got == ref.n_blocks(n_rows, kernels.BLOCK_ROWS)
    assert (got - 1) * kernels.BLOCK_ROWS < n_rows <= got * kernels.BLOCK_ROWS or n_rows == 0


def test_ordered_sum_matches_reference(dtype, rng):
    values = rng.standard_normal(1000).astype(dtype)
    got = kernels.ordered_sum(values)
    assert isinstance(got, float)
    assert got == ref.ordered_sum(values)  # the same additions in the same order


def test_ordered_sum_is_in_index_order():
    """1e16 + 1 - 1e16 is 0 left to right (pairwise or exact summation would give 1)."""
    values = np.array([1e16, 1.0, -1e16])
    assert kernels.ordered_sum(values) == 0.0
    assert kernels.ordered_sum(values[::-1].copy()) == 0.0
    assert kernels.ordered_sum(np.array([1.0, 1e16, -1e16])) == 0.0
    assert kernels.ordered_sum(np.array([1e16, -1e16, 1.0])) == 1.0
