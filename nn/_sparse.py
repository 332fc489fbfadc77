"""Sparse inputs: a ``scipy.sparse`` X (CSR; other formats converted once) for ``fit``,
``predict``, ``evaluate`` and ``forward``.

The first layer must be a ``Dense``; it runs the CSR kernels (``kernels.sparse``) and
every later layer sees the dense activations as usual. X is never densified: training
gathers each batch's rows (indptr, indices, data) into buffers sized once for the
largest batch, and inference walks row chunks of X's own arrays. A standardizer is
refused (centering a sparse matrix densifies it) and so is augmentation.

Training keeps the first layer's dW equal to the dense gradient while writing only the
rows of the features a batch holds: the rows the previous batch wrote are cleared and
the new ones summed (``kernels.csr_dense_backward``); with an L2 or L1 penalty every
row is written, as on the dense path. ``fit`` runs these steps on the per-layer
reference path (the compiled plan takes dense X only).
"""
import sys

import numpy as np

import kernels

from ._layout import cached_work
from ._validation import all_finite, check_csr


def is_sparse(X):
    """Whether X is a ``scipy.sparse`` matrix or array (without importing SciPy's sparse
    package: an object of it exists only once that package is imported)."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(X)


def is_csr_rows(X):
    return isinstance(X, CSRRows)


class CSRRows:
    """Rows of a CSR matrix as the kernels take them: row i holds ``data[indptr[i]:
    indptr[i+1]]`` at columns ``indices[...]`` (``indptr[0]`` need not be 0). What the
    first Dense layer's forward, backward and infer receive for a sparse input."""

    __slots__ = ("indptr", "indices", "data", "shape")

    def __init__(self, indptr, indices, data, n_cols):
        self.indptr, self.indices, self.data = indptr, indices, data
        self.shape = (indptr.shape[0] - 1, n_cols)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def nnz(self):
        return int(self.indptr[-1] - self.indptr[0])

    def largest_abs(self):
        """The largest |value| stored in these rows (for error messages)."""
        values = self.data[self.indptr[0]:self.indptr[-1]]
        return float(np.abs(values).max()) if values.size else 0.0

    @classmethod
    def of(cls, csr):
        """All rows of a SciPy CSR matrix (views, no copy)."""
        return cls(csr.indptr, csr.indices, csr.data, csr.shape[1])


def check(model, name, X, where, dtype):
    """X (any scipy.sparse format) checked for ``model`` and returned as canonical CSR
    (sorted indices, no repeats), its data in ``dtype`` (None: as given)."""
    from .layers import Dense
    if not isinstance(model.layers[0], Dense):
        raise ValueError(f"{where}: a sparse {name} needs a model whose first layer is "
                         f"nn.Dense; got {type(model.layers[0]).__name__} first. Put the "
                         f"Dense layer first, or pass {name}.toarray() when it fits in "
                         f"memory.")
    if model.standardizer is not None:
        raise ValueError(f"{where}: {name} is sparse and the model has a standardizer; "
                         f"centering would make every entry nonzero. Scale sparse "
                         f"features beforehand (e.g. divide each column by its largest "
                         f"|value|) and set model.standardizer = None.")
    return check_csr(name, X, where=where, dtype=dtype, n_cols=model.n_features)


def chunk(X, lo, hi, dtype, where):
    """Rows lo:hi of the checked CSR matrix X as ``CSRRows`` with data in ``dtype``: views
    of X's arrays, or a converted copy of the chunk's values."""
    indptr = X.indptr[lo:hi + 1]
    if X.dtype == dtype:
        return CSRRows(indptr, X.indices, X.data, X.shape[1])
    a, b = indptr[0], indptr[-1]
    values = X.data[a:b]
    with np.errstate(over="ignore"):  # too-large values get the clear error below
        data = values.astype(dtype)
    if np.issubdtype(values.dtype, np.floating) and not all_finite(data):
        raise ValueError(f"{where}: X has values too large for {np.dtype(dtype)}.")
    return CSRRows(indptr - a, X.indices[a:b], data, X.shape[1])


def check_training(X, augment, where):
    if augment is not None:
        raise ValueError(f"{where}: augment works on dense rows; X is sparse. Train "
                         f"without augment, or pass X.toarray() when it fits in memory.")


def max_batch_nonzeros(indptr, batch_rows):
    """The most stored values any ``batch_rows`` rows hold together (the sum of the
    longest rows): the size of the batch buffers."""
    lengths = np.diff(indptr)
    if batch_rows >= lengths.shape[0]:
        return int(lengths.sum())
    cut = lengths.shape[0] - batch_rows
    return int(np.partition(lengths, cut)[cut:].sum())


class Batches:
    """Gathers a training batch's rows of a CSR matrix into buffers sized once (for the
    ``batch_rows`` longest rows): ``take(rows)`` returns them as ``CSRRows``."""

    def __init__(self, X, batch_rows):
        self.X = X
        capacity = max(1, max_batch_nonzeros(X.indptr, batch_rows))
        self.capacity = capacity
        self.indptr = np.empty(batch_rows + 1, X.indptr.dtype)
        self.indices = np.empty(capacity, X.indices.dtype)
        self.data = np.empty(capacity, X.dtype)

    def take(self, rows):
        X = self.X
        kernels.csr_take_rows(X.indptr, X.indices, X.data, rows, self.indptr, self.indices,
                              self.data)
        return CSRRows(self.indptr[:rows.shape[0] + 1], self.indices, self.data,
                       X.shape[1])


# -- the first Dense layer -------------------------------------------------------------

class _Transpose:
    """A layer's work arrays for the batch's columns (``kernels.csr_transpose``) and
    which rows of its dW may be nonzero."""

    def __init__(self, n_in, capacity, dtype):
        self.capacity, self.dtype = capacity, dtype
        self.slot = np.full(n_in, -1, np.int64)
        # This batch's features and the last batch's (the rows of dW to clear): two
        # arrays that trade places after each backward.
        self.features = np.empty(capacity, np.int64)
        self.stale = np.empty(capacity, np.int64)
        self.col_ptr = np.empty(capacity + 1, np.int64)
        self.col_rows = np.empty(capacity, np.int64)
        self.col_vals = np.empty(capacity, dtype)
        self.n_stale = -1   # any row of dW may be nonzero


def prepare(layer, capacity, dtype):
    """Ready ``layer`` (the first Dense) for training on batches of up to ``capacity``
    nonzeros; its dW is cleared whole at the next backward (whatever wrote it before)."""
    state = layer.__dict__.get("_sparse_transpose")
    if state is None or state.capacity < capacity or state.dtype != dtype:
        state = layer._sparse_transpose = _Transpose(layer.n_in, max(capacity, 1), dtype)
    state.n_stale = -1
    return state


def _make_work(layer):
    def make(n, dtype):
        Z = np.empty((n, layer.n_out), dtype)
        A = Z if layer.act_code == kernels.ACT_IDENTITY else np.empty_like(Z)
        return Z, A, np.empty_like(Z), np.empty((kernels.n_blocks(n), layer.n_out))
    return make


def dense_forward(layer, X):
    """``Dense.forward`` in training mode for a ``CSRRows`` batch."""
    work = cached_work(layer.__dict__.setdefault("_sparse_work", {}), X.shape[0], X.dtype,
                       _make_work(layer))
    Z, A, _, _ = work
    kernels.csr_dense_forward(X.indptr, X.indices, X.data, layer._params["W"],
                              layer._params["b"], layer.act_code, Z, A,
                              kernels.parallel_arg(Z.size))
    layer._X, layer._cur = X, work
    return A


def dense_backward(layer, dA, l2, l1):
    """``Dense.backward`` for the ``CSRRows`` batch of the last forward: fills dW (the
    rows of the batch's features, or all with a penalty) and db; no dX."""
    X = layer._X
    Z, A, dZ, scratch = layer._cur
    state = layer.__dict__.get("_sparse_transpose")
    if state is None or state.capacity < X.nnz or state.dtype != X.dtype:
        state = prepare(layer, X.nnz, X.dtype)
    W = layer._params["W"]
    cost, n_present = kernels.csr_dense_backward(
        X.indptr, X.indices, X.data, W, Z, A, dA, layer.act_code, l2, l1, dZ,
        layer._grads["W"], layer._grads["b"], scratch, state.slot, state.stale,
        state.n_stale, state.features, state.col_ptr, state.col_rows, state.col_vals,
        kernels.parallel_arg(max(Z.size, W.size)))
    state.features, state.stale = state.stale, state.features
    state.n_stale = n_present if l2 == 0.0 and l1 == 0.0 else -1
    return None, cost


def dense_infer(layer, X, work):
    """``Dense.infer`` for ``CSRRows``: Z and A in one buffer."""
    A = work[:X.shape[0]]
    kernels.csr_dense_forward(X.indptr, X.indices, X.data, layer._params["W"],
                              layer._params["b"], layer.act_code, A, A,
                              kernels.parallel_arg(A.size))
    return A

