"""The CSR first-layer kernels (kernels/sparse.py) against the float64 references.

References: SciPy's ``toarray()`` of the batch fed to reference.dense_forward and
dense_backward (plain NumPy in float64). Tolerances: the "gemm" entries of the suite's
table, the inner dimension being a row's nonzeros (forward) or a feature's rows in the
batch (dW); db and dZ are the dense kernel's own pass ("sum", "elementwise").
"""
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

import kernels
import reference as ref
from thread_counts import assert_same_bits_1_and_2_threads

ACT_CODES = [pytest.param(code, id=name) for name, code in
             [("identity", kernels.ACT_IDENTITY), ("relu", kernels.ACT_RELU),
              ("leaky_relu", kernels.ACT_LEAKY_RELU), ("tanh", kernels.ACT_TANH),
              ("sigmoid", kernels.ACT_SIGMOID)]]

#: (rows, features, units): outputs below PARALLEL_MIN_SIZE, and above it.
SHAPES = [pytest.param((70, 300, 20), id="serial"),
          pytest.param((1100, 500, 64), id="parallel")]


def _csr(rng, n, k, density, dtype, index_dtype=np.int32, empty_rows=True):
    """A random CSR matrix with some empty rows, values O(1)."""
    X = sp.random(n, k, density=density, format="csr", random_state=rng,
                  data_rvs=rng.standard_normal).astype(dtype)
    if empty_rows:
        X = X.tolil()
        X[::7] = 0      # every 7th row empty
        X = X.tocsr()
        X.eliminate_zeros()
    X.indptr = X.indptr.astype(index_dtype)
    X.indices = X.indices.astype(index_dtype)
    return X


def _messy(rng, X):
    """The same matrix with each row's entries shuffled and some split in two repeats
    (repeats add): unsorted, duplicate column indices, as SciPy allows."""
    indptr, indices, data = [0], [], []
    for i in range(X.shape[0]):
        cols = X.indices[X.indptr[i]:X.indptr[i + 1]]
        vals = X.data[X.indptr[i]:X.indptr[i + 1]]
        for c, v in zip(cols, vals):
            if rng.random() < 0.3:
                half = v.dtype.type(v / 2)
                indices += [c, c]
                data += [half, v - half]
            else:
                indices.append(c)
                data.append(v)
        row = slice(indptr[-1], len(indices))
        perm = rng.permutation(row.stop - row.start)
        indices[row] = list(np.asarray(indices[row])[perm])
        data[row] = list(np.asarray(data[row], X.dtype)[perm])
        indptr.append(len(indices))
    M = sp.csr_matrix((np.asarray(data, X.dtype), np.asarray(indices, X.indices.dtype),
                       np.asarray(indptr, X.indptr.dtype)), shape=X.shape)
    assert not M.has_sorted_indices
    return M


def _params(rng, k, m, dtype, with_bias=True):
    W = (rng.standard_normal((k, m)) / 3.0).astype(dtype)
    b = rng.standard_normal(m).astype(dtype) if with_bias else np.zeros(0, dtype)
    return W, b


def _forward(X, W, b, act_code, parallel=True):
    n, m = X.shape[0], W.shape[1]
    Z = np.full((n, m), np.nan, W.dtype)
    A = Z if act_code == kernels.ACT_IDENTITY else np.full((n, m), np.nan, W.dtype)
    kernels.csr_dense_forward(X.indptr, X.indices, X.data, W, b, act_code, Z, A, parallel)
    return Z, A


class _Transpose:
    def __init__(self, k, nnz, dtype):
        self.slot = np.full(k, -1, np.int64)
        self.features = np.empty(max(nnz, 1), np.int64)
        self.stale = np.empty(max(nnz, 1), np.int64)
        self.col_ptr = np.empty(max(nnz, 1) + 1, np.int64)
        self.col_rows = np.empty(max(nnz, 1), np.int64)
        self.col_vals = np.empty(max(nnz, 1), dtype)


def _backward(X, W, Z, A, dA, act_code, l2, l1, dW, n_stale, t, parallel=True,
              with_bias=True):
    n, m = Z.shape
    dZ = np.full((n, m), np.nan, W.dtype)
    db = np.full(m if with_bias else 0, np.nan, W.dtype)
    scratch = np.full((kernels.n_blocks(n), m), np.nan)
    cost, n_present = kernels.csr_dense_backward(
        X.indptr, X.indices, X.data, W, Z, A, dA, act_code, l2, l1, dZ, dW, db, scratch,
        t.slot, t.stale, n_stale, t.features, t.col_ptr, t.col_rows, t.col_vals, parallel)
    t.features, t.stale = t.stale, t.features   # this batch's rows: the next call's stale
    return dZ, db, cost, n_present


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act_code", ACT_CODES)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_csr_dense_forward_matches_reference(shape, act_code, with_bias, dtype, tol):
    rng = np.random.default_rng(0)
    n, k, m = shape
    X = _csr(rng, n, k, 0.03, dtype)
    W, b = _params(rng, k, m, dtype, with_bias)
    Z, A = _forward(X, W, b, act_code)
    Z_ref, A_ref = ref.dense_forward(X.toarray(), W, b, act_code)
    width = int(np.diff(X.indptr).max())
    assert_allclose(Z, Z_ref, **tol(dtype, "gemm", width + 1))
    assert_allclose(A, A_ref, **tol(dtype, "gemm", width + 1))
    assert np.isfinite(Z[::7]).all()   # empty rows: the bias (or 0) and its activation
    assert_array_equal(Z[::7], np.broadcast_to(b if with_bias else 0, Z[::7].shape))


def test_csr_dense_forward_one_row_slice_and_index_dtypes(dtype):
    rng = np.random.default_rng(1)
    X = _csr(rng, 40, 200, 0.05, dtype, index_dtype=np.int64)
    W, b = _params(rng, 200, 16, dtype)
    Z_all, _ = _forward(X, W, b, kernels.ACT_RELU)
    for i in (0, 1, 39):   # a batch of one row: X's own arrays, indptr from row i
        Z, A = np.empty((1, 16), dtype), np.empty((1, 16), dtype)
        kernels.csr_dense_forward(X.indptr[i:i + 2], X.indices, X.data, W, b,
                                  kernels.ACT_RELU, Z, A, None)
        assert_array_equal(Z, Z_all[i:i + 1])
    X32 = X.copy()
    X32.indptr, X32.indices = X.indptr.astype(np.int32), X.indices.astype(np.int32)
    assert_array_equal(_forward(X32, W, b, kernels.ACT_RELU)[0], Z_all)


def test_csr_dense_forward_unsorted_and_repeated_columns(dtype, tol):
    rng = np.random.default_rng(2)
    X = _csr(rng, 60, 300, 0.05, dtype)
    M = _messy(rng, X)
    W, b = _params(rng, 300, 24, dtype)
    Z, A = _forward(M, W, b, kernels.ACT_TANH)
    Z_ref, A_ref = ref.dense_forward(X.toarray(), W, b, kernels.ACT_TANH)
    width = int(np.diff(M.indptr).max())
    assert_allclose(Z, Z_ref, **tol(dtype, "gemm", width + 1))
    assert_allclose(A, A_ref, **tol(dtype, "gemm", width + 1))


def test_csr_take_rows_matches_reference(dtype):
    rng = np.random.default_rng(3)
    X = _csr(rng, 100, 80, 0.1, dtype)
    rows = rng.permutation(100)[:37].astype(np.int64)
    cap = np.sort(np.diff(X.indptr))[::-1][:37].sum()   # the 37 longest rows
    indptr = np.full(38, -1, X.indptr.dtype)
    indices = np.full(cap, -1, X.indices.dtype)
    data = np.full(cap, np.nan, dtype)
    nnz = kernels.csr_take_rows(X.indptr, X.indices, X.data, rows, indptr, indices, data)
    want = ref.csr_take_rows(X, rows)
    assert nnz == want.nnz
    assert_array_equal(indptr, want.indptr)
    assert_array_equal(indices[:nnz], want.indices)
    assert_array_equal(data[:nnz], want.data)


def test_csr_transpose_matches_reference(dtype):
    rng = np.random.default_rng(4)
    X = _messy(rng, _csr(rng, 50, 120, 0.08, dtype))
    t = _Transpose(120, X.nnz, dtype)
    vals = np.empty(X.nnz, dtype)
    n_present = kernels.csr_transpose(X.indptr, X.indices, X.data, 50, t.slot, t.features,
                                      t.col_ptr, t.col_rows, vals)
    assert (t.slot == -1).all()           # restored
    want = ref.csr_transpose(X)
    features = t.features[:n_present]
    assert sorted(features) == sorted(want)
    for u, f in enumerate(features):
        lo, hi = t.col_ptr[u], t.col_ptr[u + 1]
        rows, values = want[f]
        assert_array_equal(t.col_rows[lo:hi], rows)          # in row order
        assert_array_equal(vals[lo:hi].astype(np.float64), values)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act_code", ACT_CODES)
@pytest.mark.parametrize("penalties", [(0.0, 0.0), (0.3, 0.05)], ids=["plain", "l2l1"])
def test_csr_dense_backward_matches_reference(shape, act_code, penalties, dtype, tol):
    rng = np.random.default_rng(5)
    n, k, m = shape
    l2, l1 = penalties
    X = _csr(rng, n, k, 0.03, dtype)
    W, b = _params(rng, k, m, dtype)
    Z, A = _forward(X, W, b, act_code)
    dA = (rng.standard_normal((n, m)) / np.sqrt(n)).astype(dtype)
    dW = np.full((k, m), np.nan, dtype)   # n_stale = -1: any row may hold anything
    t = _Transpose(k, X.nnz, dtype)
    dZ, db, cost, n_present = _backward(X, W, Z, A, dA, act_code, l2, l1, dW, -1, t)
    dZ_ref, db_ref, dW_ref = ref.csr_dense_backward(X, W, Z, dA, act_code, l2, l1)
    depth = int(np.diff(X.tocsc().indptr).max())
    assert_allclose(dZ, dZ_ref, **tol(dtype))
    assert_allclose(db, db_ref, **tol(dtype, "gemm", n))
    assert_allclose(db, dZ.astype(np.float64).sum(axis=0), **tol(dtype, "sum"))
    assert_allclose(dW, dW_ref, **tol(dtype, "gemm", depth + 2))
    assert n_present == len(set(X.indices))
    assert_allclose(cost, ref.weight_penalty(W, l2, l1, n), rtol=1e-12)
    if l2 == 0.0 and l1 == 0.0:   # absent features: exactly zero
        absent = np.setdiff1d(np.arange(k), X.indices)
        assert_array_equal(dW[absent], 0.0)


def test_csr_dense_backward_clears_only_the_stale_rows(dtype, tol):
    """The second batch's call clears the first batch's rows (n_stale) and sums its own;
    the other rows, zero already, are not touched (a NaN planted there stays)."""
    rng = np.random.default_rng(6)
    k, m = 400, 8
    W, b = _params(rng, k, m, dtype)
    t = _Transpose(k, 2000, dtype)
    dW = np.full((k, m), np.nan, dtype)
    first = _csr(rng, 30, k, 0.02, dtype)
    Z, A = _forward(first, W, b, kernels.ACT_RELU)
    dA = rng.standard_normal(Z.shape).astype(dtype)
    _, _, _, n1 = _backward(first, W, Z, A, dA, kernels.ACT_RELU, 0.0, 0.0, dW, -1, t)
    untouched = np.setdiff1d(np.arange(k), first.indices)[0]
    dW[untouched] = np.nan      # a row neither batch names and the caller says is zero
    second = _messy(rng, _csr(rng, 1, k, 0.05, dtype, empty_rows=False))   # one row
    assert untouched not in set(second.indices)
    new_rows = np.setdiff1d(second.indices, first.indices)
    dW[new_rows] = np.nan       # rows the second batch holds are written whole
    Z, A = _forward(second, W, b, kernels.ACT_SIGMOID)
    dA = rng.standard_normal(Z.shape).astype(dtype)
    _, _, _, n2 = _backward(second, W, Z, A, dA, kernels.ACT_SIGMOID, 0.0, 0.0, dW, n1, t)
    _, _, dW_ref, _ = ref.dense_backward(second.toarray(), W, Z, dA, kernels.ACT_SIGMOID,
                                         0.0, 0.0)
    others = np.setdiff1d(np.arange(k), [untouched])
    assert_allclose(dW[others], dW_ref[others], **tol(dtype, "gemm", 4))
    assert np.isnan(dW[untouched]).all()
    assert n2 == len(set(second.indices)) and len(new_rows) > 0
    assert sorted(t.stale[:n2]) == sorted(set(second.indices))   # what the next call clears


def test_csr_dense_backward_empty_batch_rows(dtype):
    """A batch whose rows are all empty: dW zero, db the dZ sum."""
    rng = np.random.default_rng(7)
    X = sp.csr_matrix((3, 50), dtype=dtype)
    W, b = _params(rng, 50, 6, dtype)
    Z, A = _forward(X, W, b, kernels.ACT_RELU)
    assert_array_equal(A, np.broadcast_to(np.maximum(b, 0), A.shape))
    dW = np.full((50, 6), np.nan, dtype)
    dZ, db, cost, n_present = _backward(X, W, Z, A, np.ones_like(Z), kernels.ACT_RELU,
                                        0.0, 0.0, dW, -1, _Transpose(50, 0, dtype))
    assert n_present == 0 and cost == 0.0
    assert_array_equal(dW, 0.0)
    assert_array_equal(db, 3.0 * (b > 0))


# -- thread counts ------------------------------------------------------------------

def test_csr_dense_forward_same_bits_any_thread_count(at_threads, dtype):
    """Covers _csr_forward_parallel."""
    rng = np.random.default_rng(8)
    X = _csr(rng, 1100, 2000, 0.01, dtype)
    W, b = _params(rng, 2000, 64, dtype)
    assert 1100 * 64 >= kernels.PARALLEL_MIN_SIZE
    assert_same_bits_1_and_2_threads(
        at_threads, lambda parallel=True: _forward(X, W, b, kernels.ACT_TANH, parallel))


def test_csr_dense_backward_same_bits_any_thread_count(at_threads, dtype):
    """Covers _weight_grad_parallel and _zero_rows_parallel: the second batch clears
    the first's rows (more than PARALLEL_MIN_SIZE elements) and sums its own."""
    rng = np.random.default_rng(9)
    k, m = 3000, 64
    first, second = _csr(rng, 1100, k, 0.01, dtype), _csr(rng, 1100, k, 0.01, dtype)
    W, b = _params(rng, k, m, dtype)

    def call(parallel=True):
        t = _Transpose(k, max(first.nnz, second.nnz), dtype)
        dW = np.full((k, m), np.nan, dtype)
        out = []
        n_stale = -1
        for X, (l2, l1) in ((first, (0.0, 0.0)), (second, (0.0, 0.0)), (first, (0.2, 0.1))):
            Z, A = _forward(X, W, b, kernels.ACT_RELU, parallel)
            dA = np.sin(np.arange(Z.size, dtype=dtype)).reshape(Z.shape)
            dZ, db, cost, n_present = _backward(X, W, Z, A, dA, kernels.ACT_RELU, l2, l1,
                                                dW, n_stale, t, parallel)
            assert n_present * m >= kernels.PARALLEL_MIN_SIZE
            n_stale = n_present
            out += [dZ, db, dW.copy(), cost, n_present]
        return out

    assert_same_bits_1_and_2_threads(at_threads, call)
