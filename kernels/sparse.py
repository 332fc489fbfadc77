"""A dense layer whose input is a CSR matrix (sparse rows): gather, forward, backward.

A batch is three arrays in SciPy's CSR layout: row i holds the values
``data[indptr[i]:indptr[i+1]]`` at the columns ``indices[indptr[i]:indptr[i+1]]``
(``indptr[0]`` need not be 0, so a slice of a larger matrix's ``indptr`` is a batch).
Column indices may be unsorted and repeated (repeats add), as in SciPy. Index arrays
are int32 or int64 (SciPy's choice); one compiled signature per index dtype in use.

Forward:  Z = X @ W + b (row i: the sum of ``data[k] * W[indices[k]]`` over its
          nonzeros, in storage order, then ``+ b``), A = act(Z).
Backward: dZ = dA * act'(Z), db = sum_rows dZ (the dense kernel's pass, same bits),
          dW[f] = sum over the batch's nonzeros at column f of ``data[k] * dZ[row(k)]``
          for the features f present; no dX (a sparse input is the first layer).

Determinism: the forward is parallel over rows (a row is one thread's); the backward
first transposes the batch (CSC: for each feature present, its rows in row order), then
runs parallel over those features, each row of dW summed by one thread in row order.
No float is ever added from two threads, so the bits are the same for any thread count.
"""
from numba import njit, prange

from ._parallel import PARALLEL_MIN_SIZE, ROW_CHUNK, serial_and_parallel
from .dense import (_add_penalty_grad, _bias_act_row, _penalty_cost, _penalty_sums,
                    grad_and_bias)


@njit(cache=True)
def csr_take_rows(indptr, indices, data, rows, out_indptr, out_indices, out_data):
    """Gather rows ``rows`` of a CSR matrix into a CSR batch; returns its nonzeros.

    indptr (n+1,), indices (nnz,), data (nnz,) read: the matrix; rows (r,) int64 read:
    row numbers in [0, n); out_indptr (>= r+1,) written, starting at 0; out_indices,
    out_data (>= the batch's nonzeros,) written. The caller sizes the outputs once (for
    the longest rows), so a training step allocates nothing.
    """
    pos = 0
    out_indptr[0] = 0
    for j in range(rows.shape[0]):
        i = rows[j]
        lo = indptr[i]
        hi = indptr[i + 1]
        for k in range(lo, hi):
            out_indices[pos] = indices[k]
            out_data[pos] = data[k]
            pos += 1
        out_indptr[j + 1] = pos
    return pos


# -- forward --------------------------------------------------------------------------

@njit(cache=True, no_cfunc_wrapper=True)
def _csr_forward_rows(indptr, indices, data, W, b, act_code, Z, A, lo, hi):
    d = W.shape[1]
    zero = Z.dtype.type(0.0)
    for i in range(lo, hi):
        z_row = Z[i]
        for j in range(d):
            z_row[j] = zero
        for k in range(indptr[i], indptr[i + 1]):
            x = data[k]
            w_row = W[indices[k]]
            for j in range(d):
                z_row[j] += x * w_row[j]
        _bias_act_row(z_row, b, act_code, A[i])   # the dense layer's bias + activation


def _csr_forward(indptr, indices, data, W, b, act_code, Z, A):
    n = Z.shape[0]
    nc = (n + ROW_CHUNK - 1) // ROW_CHUNK
    for c in prange(nc):
        _csr_forward_rows(indptr, indices, data, W, b, act_code, Z, A, c * ROW_CHUNK,
                      min(n, (c + 1) * ROW_CHUNK))


_csr_forward_serial, _csr_forward_parallel = serial_and_parallel(_csr_forward)


@njit(cache=True)
def csr_dense_forward(indptr, indices, data, W, b, act_code, Z, A, parallel=True):
    """A = act(X @ W + b) for a CSR batch X, keeping Z for backward.

    indptr (n+1,), indices (nnz,) int read; data (nnz,) read: the batch (module
    docstring); W (k, m) read; b (m,) read, or shape (0,) for no bias; act_code int
    (``kernels.ACT_*``); Z (n, m) written; A (n, m) written (may be Z when act_code is
    ``ACT_IDENTITY``, or for inference). Float arrays share one dtype.
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements
    (of Z); None never does and leaves it uncompiled.

    Notes: row i accumulates ``data[k] * W[indices[k]]`` in storage order into Z[i],
    then the dense kernel's fused bias-activation pass; rows are independent, so the
    same bits for any thread count. Reads only the rows of W its columns name.
    """
    if parallel is not None:
        if parallel and Z.size >= PARALLEL_MIN_SIZE:
            _csr_forward_parallel(indptr, indices, data, W, b, act_code, Z, A)
            return
    _csr_forward_serial(indptr, indices, data, W, b, act_code, Z, A)


# -- backward -------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _transpose_marked(indptr, indices, data, n_rows, slot, features, col_ptr, col_rows,
                      col_vals):
    """``csr_transpose`` leaving ``slot[f]`` at feature f's position (>= 0) for the
    features present; the caller resets them."""
    n_unique = 0
    for k in range(indptr[0], indptr[n_rows]):
        f = indices[k]
        u = slot[f]
        if u < 0:
            u = n_unique
            slot[f] = u
            features[u] = f
            col_ptr[u + 1] = 0
            n_unique += 1
        col_ptr[u + 1] += 1
    col_ptr[0] = 0
    for u in range(n_unique):
        col_ptr[u + 1] += col_ptr[u]
    # Fill with col_ptr[u] as feature u's cursor; it ends at u's end, the next start.
    for i in range(n_rows):
        for k in range(indptr[i], indptr[i + 1]):
            u = slot[indices[k]]
            pos = col_ptr[u]
            col_rows[pos] = i
            col_vals[pos] = data[k]
            col_ptr[u] = pos + 1
    for u in range(n_unique, 0, -1):
        col_ptr[u] = col_ptr[u - 1]
    col_ptr[0] = 0
    return n_unique


@njit(cache=True)
def csr_transpose(indptr, indices, data, n_rows, slot, features, col_ptr, col_rows,
                  col_vals):
    """The batch's columns: for each feature present, its rows (in row order) and values.

    indptr (n_rows+1,), indices, data read: the batch; slot (n_features,) int64: -1
    everywhere on entry, and again on return (used as a feature -> position map);
    features (>= nnz,) int64 written: the features present, in order of first
    appearance; col_ptr (>= nnz+1,) int64, col_rows (>= nnz,) int64, col_vals (>= nnz,)
    written: feature u's entries are ``col_rows/col_vals[col_ptr[u]:col_ptr[u+1]]``.
    Returns the number of features present. Serial: linear in the batch's nonzeros.
    """
    n_unique = _transpose_marked(indptr, indices, data, n_rows, slot, features, col_ptr,
                                 col_rows, col_vals)
    for u in range(n_unique):
        slot[features[u]] = -1
    return n_unique


@njit(cache=True, inline="always")
def _weight_grad_feature(dZ, features, col_ptr, col_rows, col_vals, u, dW):
    """dW[f] = sum of the feature's values times their rows of dZ, in row order (the
    first term written, the others added: no pass to zero the row first)."""
    row = dW[features[u]]
    d = row.shape[0]
    lo = col_ptr[u]
    x = col_vals[lo]
    dz_row = dZ[col_rows[lo]]
    for j in range(d):
        row[j] = x * dz_row[j]
    for k in range(lo + 1, col_ptr[u + 1]):
        x = col_vals[k]
        dz_row = dZ[col_rows[k]]
        for j in range(d):
            row[j] += x * dz_row[j]


def _weight_grad(dZ, features, n_unique, col_ptr, col_rows, col_vals, dW):
    for u in prange(n_unique):
        _weight_grad_feature(dZ, features, col_ptr, col_rows, col_vals, u, dW)


_weight_grad_serial, _weight_grad_parallel = serial_and_parallel(_weight_grad)


def _zero_rows(dW, rows, n_rows, slot):
    # Rows the batch holds (slot >= 0) are written whole by _weight_grad: skipped.
    for u in prange(n_rows):
        r = rows[u]
        if slot[r] < 0:
            row = dW[r]
            for j in range(row.shape[0]):
                row[j] = 0.0


_zero_rows_serial, _zero_rows_parallel = serial_and_parallel(_zero_rows)


@njit(cache=True)
def csr_dense_backward(indptr, indices, data, W, Z, A, dA, act_code, l2, l1, dZ, dW, db,
                       scratch, slot, stale, n_stale, features, col_ptr, col_rows, col_vals,
                       parallel=True):
    """Gradients of a dense layer with a CSR batch input: dZ, db and dW (no dX).

    indptr, indices, data read: the batch X (n rows); W (k, m) read; Z, A (n, m) read
    (from ``csr_dense_forward``); dA (n, m) read; act_code int; l2, l1 float >= 0; dZ
    (n, m) written (may be dA); dW (k, m) written as below; db (m,) written, or shape
    (0,) for no bias; scratch (n_blocks(n), m) float64 written; slot (k,) int64, -1
    everywhere (restored on return); stale (>= n_stale,) int read: the rows of dW that
    may be nonzero (the previous call's ``features``), or n_stale = -1 when any row may
    be; features (>= nnz,) int64 written: its first ``n_present`` entries list this
    batch's features (pass them as ``stale`` next time, with another array as
    ``features``); col_ptr (>= nnz+1,), col_rows (>= nnz,) int64 and col_vals (>= nnz,)
    work arrays (``csr_transpose``).
    parallel: True (default) takes the parallel builds from PARALLEL_MIN_SIZE elements
    (of Z, and of the dW rows written); None never does.

    dW ends equal to the dense gradient X.T @ dZ + (l2/m) W + (l1/m) sign(W), m = n:
    rows of absent features are zero without penalties. Only the stale rows are
    cleared and only the present rows summed, so with l2 = l1 = 0 a step touches the
    rows of its features alone; with a penalty every row is written (as the dense
    kernel does) and the next call needs n_stale = -1.

    Returns ``(penalty cost, n_present)``: the cost term as ``weight_penalty``, and the
    number of features in the batch.
    """
    n = Z.shape[0]
    grad_and_bias(Z, A, dA, act_code, dZ, db, scratch, parallel)
    width = dW.shape[1]
    n_present = _transpose_marked(indptr, indices, data, n, slot, features, col_ptr,
                                  col_rows, col_vals)
    if n_stale < 0:
        zero = dW.dtype.type(0.0)
        for r in range(dW.shape[0]):
            if slot[r] < 0:
                for j in range(width):
                    dW[r, j] = zero
    elif n_stale > 0:
        if parallel is not None:
            if parallel and n_stale * width >= PARALLEL_MIN_SIZE:
                _zero_rows_parallel(dW, stale, n_stale, slot)
            else:
                _zero_rows_serial(dW, stale, n_stale, slot)
        else:
            _zero_rows_serial(dW, stale, n_stale, slot)
    if parallel is not None:
        if parallel and n_present * width >= PARALLEL_MIN_SIZE:
            _weight_grad_parallel(dZ, features, n_present, col_ptr, col_rows, col_vals, dW)
        else:
            _weight_grad_serial(dZ, features, n_present, col_ptr, col_rows, col_vals, dW)
    else:
        _weight_grad_serial(dZ, features, n_present, col_ptr, col_rows, col_vals, dW)
    for u in range(n_present):
        slot[features[u]] = -1
    cost = 0.0
    if l2 != 0.0 or l1 != 0.0:
        _add_penalty_grad(W, l2 / n, l1 / n, dW)
        sq, ab = _penalty_sums(W)
        cost = _penalty_cost(sq, ab, l2, l1, n)
    return cost, n_present

