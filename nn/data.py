"""Data preparation: train/dev/test splits, standardization and minibatch indices.

Only numpy and the standard library are used.
"""

from __future__ import annotations

import numbers
from collections import deque

import numpy as np

__all__ = ["split", "Standardizer", "iterate_minibatches"]

_PART_NAMES = ("train", "dev", "test")


def _describe(value):
    """Short description of a value for error messages."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} of type {type(value).__name__}"


def _check_int(value, where, name, minimum):
    """Return ``value`` as a Python int >= minimum, rejecting bools and floats."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} must be an int; got {_describe(value)}.")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{where}: {name} must be an int >= {minimum}; got {value}.")
    return value


def _check_bool(value, where, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be True or False; got {_describe(value)}.")
    return bool(value)


def _check_real_matrix(X, where, name="X"):
    """Return X as a 2-D, non-empty, finite, real numeric ndarray (no copy if possible)."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(
            f"{where}: {name} must hold real numbers (bool, int or float); "
            f"got dtype {X.dtype}."
        )
    if X.ndim != 2:
        raise ValueError(
            f"{where}: {name} must be a 2-D array (n_samples, n_features); "
            f"got an array with shape {X.shape}."
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(
            f"{where}: {name} must have at least one row and one column; "
            f"got shape {X.shape}."
        )
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        n_nan = int(np.isnan(X).sum())
        n_inf = int(np.isinf(X).sum())
        raise ValueError(
            f"{where}: {name} must be finite; got {n_nan} NaN and {n_inf} "
            f"infinite values."
        )
    return X


def _largest_remainder(n, ratios):
    """Split ``n`` into integer parts proportional to ``ratios`` (summing to n).

    Each part gets the floor of its quota ``n * ratio``; the remaining units
    go to the parts with the largest fractional remainders, ties to the
    earlier part.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    quotas = n * ratios / ratios.sum()
    sizes = np.floor(quotas).astype(np.int64)
    remainder = quotas - sizes
    short = n - int(sizes.sum())
    order = np.argsort(-remainder, kind="stable")
    sizes[order[:short]] += 1
    return sizes


def _controlled_rounding(counts, sizes):
    """Integer class-by-part counts from class counts and part sizes.

    Returns an int64 matrix ``M`` of shape (n_classes, n_parts) with row sums
    ``counts`` and column sums ``sizes`` where every entry is the floor or the
    ceiling of ``counts[k] * sizes[p] / n``. Such a matrix always exists (the
    exact matrix has integer margins, so the transportation polytope has an
    integer vertex next to it); it is found with a greedy pass followed by
    augmenting paths, in exact integer arithmetic.
    """
    counts = np.asarray(counts, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    n = int(counts.sum())
    numer = counts[:, None] * sizes[None, :]  # exact quota times n
    floors = numer // n
    frac = numer % n  # fractional part times n
    row_need = (frac.sum(axis=1) // n).astype(np.int64)
    col_need = (frac.sum(axis=0) // n).astype(np.int64)
    n_rows, n_cols = frac.shape
    up = np.zeros(frac.shape, dtype=bool)  # entries rounded up

    # Greedy: round up the largest remainders first while both margins allow.
    for flat in np.argsort(-frac, axis=None, kind="stable"):
        k, p = divmod(int(flat), n_cols)
        if frac[k, p] == 0:
            break
        if row_need[k] > 0 and col_need[p] > 0:
            up[k, p] = True
            row_need[k] -= 1
            col_need[p] -= 1

    # Augmenting paths (bipartite b-matching) for what greedy left unassigned:
    # row -> column over a fractional entry not yet rounded up, column -> row
    # over an entry rounded up (which that row then gives back).
    while row_need.sum() > 0:
        starts = np.flatnonzero(row_need > 0)
        parent_row = {}  # column -> row we reached it from
        parent_col = {}  # row -> column we reached it from (None for starts)
        for k in starts:
            parent_col[int(k)] = None
        queue = deque(int(k) for k in starts)
        end = None
        while queue and end is None:
            k = queue.popleft()
            for p in range(n_cols):
                if p in parent_row or up[k, p] or frac[k, p] == 0:
                    continue
                parent_row[p] = k
                if col_need[p] > 0:
                    end = p
                    break
                for k2 in np.flatnonzero(up[:, p]):
                    k2 = int(k2)
                    if k2 not in parent_col:
                        parent_col[k2] = p
                        queue.append(k2)
        if end is None:  # cannot happen for consistent margins
            raise RuntimeError("split: internal error: stratified rounding failed.")
        col_need[end] -= 1
        p = end
        while True:
            k = parent_row[p]
            up[k, p] = True
            back = parent_col[k]
            if back is None:
                row_need[k] -= 1
                break
            up[k, back] = False
            p = back
    return floors + up


def _check_ratios(ratios, where):
    try:
        values = tuple(ratios)
    except TypeError:
        raise TypeError(
            f"{where}: ratios must be a sequence of 2 or 3 numbers; got {_describe(ratios)}."
        ) from None
    if len(values) not in (2, 3) or not all(
        isinstance(r, numbers.Real) and not isinstance(r, (bool, np.bool_)) for r in values
    ):
        raise ValueError(
            f"{where}: ratios must be a sequence of 2 or 3 numbers; got {_describe(ratios)}."
        )
    values = tuple(float(r) for r in values)
    if not all(np.isfinite(r) and r > 0 for r in values):
        raise ValueError(f"{where}: ratios must all be positive and finite; got {values}.")
    total = sum(values)
    if abs(total - 1.0) > 1e-9:
        raise ValueError(
            f"{where}: ratios must sum to 1; got {values} summing to {total:.10g}."
        )
    return values


def split(X, y, ratios=(0.6, 0.2, 0.2), stratify=False, seed=0):
    """Shuffle the rows of ``X`` and ``y`` and split them into train, dev (and test) parts.

    Part sizes follow the largest-remainder method, so they sum to the number
    of rows exactly: 10000 rows with ratios (0.98, 0.01, 0.01) give 9800, 100
    and 100 rows.

    Parameters
    ----------
    X : array_like of shape (n_samples, ...)
        Features; at least 1-D and non-empty. Rows are split.
    y : array_like of shape (n_samples, ...)
        Targets with the same number of rows as ``X``: labels of shape
        (n_samples,) or any array with one row per sample (e.g. one-hot or
        regression targets). Must be 1-D labels when ``stratify`` is True.
    ratios : sequence of 2 or 3 float, default (0.6, 0.2, 0.2)
        Positive fractions for (train, dev) or (train, dev, test), summing to
        1 within 1e-9.
    stratify : bool, default False
        If True, split each class of ``y`` separately so that every part has
        the same class proportions as the whole, to within one sample per
        class; the part sizes are the same as without stratification.
    seed : int, default 0
        Non-negative seed for ``numpy.random.default_rng``. The same seed
        gives the same split.

    Returns
    -------
    tuple of (numpy.ndarray, numpy.ndarray)
        ``((X_train, y_train), (X_dev, y_dev))`` or
        ``((X_train, y_train), (X_dev, y_dev), (X_test, y_test))``. The arrays
        are new copies with the input dtypes.

    Raises
    ------
    ValueError
        If the ratios are not 2 or 3 positive numbers summing to 1, ``X`` is
        0-D or empty, ``X`` and ``y`` have different numbers of rows, a part
        would be empty, or ``stratify`` is True and ``y`` is not 1-D.
    TypeError
        If ``stratify`` is not a bool or ``seed`` is not an int.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(20, dtype=np.float32).reshape(10, 2)
    >>> y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    >>> (Xtr, ytr), (Xdv, ydv), (Xte, yte) = split(X, y, (0.6, 0.2, 0.2), seed=1)
    >>> len(ytr), len(ydv), len(yte), Xtr.dtype
    (6, 2, 2, dtype('float32'))
    >>> (Xtr, ytr), (Xdv, ydv) = split(X, y, (0.8, 0.2), stratify=True)
    >>> np.bincount(ytr).tolist(), np.bincount(ydv).tolist()
    ([4, 4], [1, 1])
    """
    where = "split"
    ratios = _check_ratios(ratios, where)
    stratify = _check_bool(stratify, where, "stratify")
    seed = _check_int(seed, where, "seed", 0)
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim == 0 or X.shape[0] == 0:
        raise ValueError(
            f"{where}: X must be an array with at least one row; got shape {X.shape}."
        )
    if y.ndim == 0 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"{where}: X and y must have the same number of rows; got X with "
            f"shape {X.shape} and y with shape {y.shape}."
        )
    n = X.shape[0]
    sizes = _largest_remainder(n, ratios)
    for name, size in zip(_PART_NAMES, sizes):
        if size == 0:
            raise ValueError(
                f"{where}: every part must get at least one row; got an empty "
                f"{name} part for n={n} rows with ratios {ratios} "
                f"(sizes {tuple(int(s) for s in sizes)})."
            )
    rng = np.random.default_rng(seed)
    if not stratify:
        order = rng.permutation(n)
        bounds = np.cumsum(sizes)[:-1]
        parts = np.split(order, bounds)
    else:
        if y.ndim != 1:
            raise ValueError(
                f"{where}: y must be 1-D class labels when stratify=True; "
                f"got shape {y.shape}."
            )
        _, label_index, counts = np.unique(y, return_inverse=True, return_counts=True)
        label_index = label_index.reshape(-1)
        per_class = _controlled_rounding(counts, sizes)
        # Shuffle, then group by class keeping the shuffled order inside each class.
        order = rng.permutation(n)
        order = order[np.argsort(label_index[order], kind="stable")]
        class_starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        chunks = [[] for _ in sizes]
        for k, start in enumerate(class_starts):
            members = order[start : start + counts[k]]
            bounds = np.cumsum(per_class[k])[:-1]
            for p, piece in enumerate(np.split(members, bounds)):
                chunks[p].append(piece)
        # Shuffle each part again so classes are interleaved.
        parts = [rng.permutation(np.concatenate(c)) for c in chunks]
    return tuple((X[idx], y[idx]) for idx in parts)


class Standardizer:
    """Scale each feature to zero mean and unit variance.

    Statistics are computed in float64; ``transform`` returns X's float dtype
    (float32 stays float32, integer and bool input becomes float32).
    Constant features (standard deviation 0, or below
    ``1e-12 * max(1, |mean|)``) get scale 1, so they map to 0 instead of
    dividing by zero.

    Attributes
    ----------
    mean_ : numpy.ndarray of shape (n_features,), float64
        Per-feature mean seen in ``fit``; None before fitting.
    scale_ : numpy.ndarray of shape (n_features,), float64
        Per-feature population standard deviation (ddof=0), with 1 for
        constant features; None before fitting.
    n_features_ : int
        Number of features seen in ``fit``; None before fitting.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 5.0], [3.0, 5.0]], dtype=np.float32)
    >>> s = Standardizer().fit(X)
    >>> s.mean_.tolist(), s.scale_.tolist()
    ([2.0, 5.0], [1.0, 1.0])
    >>> s.transform(X)
    array([[-1.,  0.],
           [ 1.,  0.]], dtype=float32)
    """

    def __init__(self):
        self.mean_ = None
        self.scale_ = None
        self.n_features_ = None

    def __repr__(self):
        if self.mean_ is None:
            return "Standardizer(not fitted)"
        return f"Standardizer(n_features={self.n_features_})"

    def fit(self, X):
        """Compute the per-feature mean and standard deviation of ``X``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Finite real numbers, at least one row.

        Returns
        -------
        Standardizer
            ``self``, fitted.

        Raises
        ------
        ValueError
            If ``X`` is not 2-D, is empty, or contains NaN or infinity.
        TypeError
            If ``X`` does not hold real numbers.

        Examples
        --------
        >>> import numpy as np
        >>> Standardizer().fit(np.array([[0.0], [2.0]])).scale_.tolist()
        [1.0]
        """
        X = _check_real_matrix(X, "Standardizer.fit")
        n, n_features = X.shape
        mean = np.mean(X, axis=0, dtype=np.float64)
        # Two-pass variance in row blocks: accurate, without a float64 copy of X.
        sq = np.zeros(n_features, dtype=np.float64)
        block = max(1, (1 << 22) // max(1, n_features))
        for start in range(0, n, block):
            d = X[start : start + block].astype(np.float64) - mean
            sq += np.einsum("ij,ij->j", d, d)
        std = np.sqrt(sq / n)
        constant = (std == 0) | (std < 1e-12 * np.maximum(1.0, np.abs(mean)))
        self.mean_ = mean
        self.scale_ = np.where(constant, 1.0, std)
        self.n_features_ = n_features
        return self

    def _check_fitted_input(self, X, where):
        if self.mean_ is None:
            raise RuntimeError(f"{where}: call fit first; this Standardizer is not fitted.")
        X = _check_real_matrix(X, where)
        if X.shape[1] != self.n_features_:
            raise ValueError(
                f"{where}: X must have {self.n_features_} features, as in fit; "
                f"got {X.shape[1]}."
            )
        dtype = X.dtype if X.dtype.kind == "f" else np.dtype(np.float32)
        return X, dtype

    def transform(self, X):
        """Standardize ``X``: ``(X - mean_) / scale_``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Finite real numbers with the number of features seen in ``fit``.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_features)
            A new C-contiguous array in X's float dtype (float32 for integer
            or bool input).

        Raises
        ------
        RuntimeError
            If called before ``fit``.
        ValueError
            If the number of features differs from ``fit``, ``X`` is not 2-D
            or empty, or contains NaN or infinity.
        TypeError
            If ``X`` does not hold real numbers.

        Examples
        --------
        >>> import numpy as np
        >>> s = Standardizer().fit(np.array([[0.0], [2.0]]))
        >>> s.transform(np.array([[4.0]])).tolist()
        [[3.0]]
        """
        X, dtype = self._check_fitted_input(X, "Standardizer.transform")
        out = np.subtract(X, self.mean_.astype(dtype), dtype=dtype, out=np.empty(X.shape, dtype))
        out /= self.scale_.astype(dtype)
        return out

    def fit_transform(self, X):
        """Fit to ``X`` and return it standardized.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Finite real numbers, at least one row.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_features)
            Same as ``fit(X).transform(X)``.

        Raises
        ------
        ValueError
            If ``X`` is not 2-D, is empty, or contains NaN or infinity.
        TypeError
            If ``X`` does not hold real numbers.

        Examples
        --------
        >>> import numpy as np
        >>> Standardizer().fit_transform(np.array([[1.0], [3.0]])).tolist()
        [[-1.0], [1.0]]
        """
        return self.fit(X).transform(X)

    def inverse_transform(self, X):
        """Undo ``transform``: ``X * scale_ + mean_``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Standardized values.

        Returns
        -------
        numpy.ndarray of shape (n_samples, n_features)
            A new array in X's float dtype (float32 for integer or bool input).

        Raises
        ------
        RuntimeError
            If called before ``fit``.
        ValueError
            If the number of features differs from ``fit``, ``X`` is not 2-D
            or empty, or contains NaN or infinity.
        TypeError
            If ``X`` does not hold real numbers.

        Examples
        --------
        >>> import numpy as np
        >>> s = Standardizer().fit(np.array([[1.0], [3.0]]))
        >>> s.inverse_transform(s.transform(np.array([[5.0]]))).tolist()
        [[5.0]]
        """
        X, dtype = self._check_fitted_input(X, "Standardizer.inverse_transform")
        out = np.multiply(X, self.scale_.astype(dtype), dtype=dtype, out=np.empty(X.shape, dtype))
        out += self.mean_.astype(dtype)
        return out

    def get_state(self):
        """Return the fitted statistics as a dict of arrays (for saving without pickle).

        Returns
        -------
        dict
            ``{"mean": mean_, "scale": scale_}``, float64 copies.

        Raises
        ------
        RuntimeError
            If called before ``fit``.

        Examples
        --------
        >>> import numpy as np
        >>> state = Standardizer().fit(np.array([[1.0], [3.0]])).get_state()
        >>> sorted(state), state["mean"].tolist()
        (['mean', 'scale'], [2.0])
        """
        if self.mean_ is None:
            raise RuntimeError("Standardizer.get_state: call fit first; this Standardizer is not fitted.")
        return {"mean": self.mean_.copy(), "scale": self.scale_.copy()}

    @classmethod
    def from_state(cls, state):
        """Rebuild a fitted Standardizer from ``get_state()`` output.

        Parameters
        ----------
        state : mapping
            With keys ``"mean"`` and ``"scale"``: 1-D arrays of equal,
            non-zero length; finite, and scale positive.

        Returns
        -------
        Standardizer
            A fitted instance with float64 ``mean_`` and ``scale_``.

        Raises
        ------
        ValueError
            If a key is missing or the arrays are not valid statistics.
        TypeError
            If ``state`` is not a mapping.

        Examples
        --------
        >>> import numpy as np
        >>> s = Standardizer.from_state({"mean": np.array([2.0]), "scale": np.array([1.0])})
        >>> s.transform(np.array([[3.0]])).tolist()
        [[1.0]]
        """
        where = "Standardizer.from_state"
        if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
            raise TypeError(
                f'{where}: state must be a dict with keys "mean" and "scale"; '
                f"got {_describe(state)}."
            )
        missing = [key for key in ("mean", "scale") if key not in state]
        if missing:
            raise ValueError(
                f'{where}: state must have keys "mean" and "scale"; got keys '
                f"{sorted(map(str, state.keys()))}."
            )
        arrays = {}
        for key in ("mean", "scale"):
            value = np.asarray(state[key])
            if value.dtype.kind not in "iuf" or value.ndim != 1 or value.size == 0:
                raise ValueError(
                    f'{where}: state["{key}"] must be a non-empty 1-D array of '
                    f"real numbers; got {_describe(value)}."
                )
            value = value.astype(np.float64)
            if not np.isfinite(value).all():
                raise ValueError(f'{where}: state["{key}"] must be finite; got non-finite values.')
            arrays[key] = value
        if arrays["mean"].shape != arrays["scale"].shape:
            raise ValueError(
                f'{where}: state["mean"] and state["scale"] must have the same length; '
                f"got {arrays['mean'].size} and {arrays['scale'].size}."
            )
        if not (arrays["scale"] > 0).all():
            raise ValueError(
                f'{where}: state["scale"] must be positive; got minimum {arrays["scale"].min()}.'
            )
        obj = cls()
        obj.mean_ = arrays["mean"]
        obj.scale_ = arrays["scale"]
        obj.n_features_ = arrays["mean"].size
        return obj


def iterate_minibatches(n_samples, batch_size, shuffle=True, seed=0, epoch=0):
    """Yield index arrays of minibatches covering ``range(n_samples)`` once.

    Arguments are checked when the function is called, before the first
    batch is requested.

    Parameters
    ----------
    n_samples : int
        Number of rows, at least 1.
    batch_size : int
        Rows per batch, at least 1. The last batch holds the remaining rows
        (it is kept, not dropped). ``batch_size >= n_samples`` gives a single
        batch of all rows (batch gradient descent).
    shuffle : bool, default True
        If True the order is a permutation drawn from
        ``numpy.random.default_rng([seed, epoch])``; otherwise ``0, 1, ...``.
    seed : int, default 0
        Non-negative seed.
    epoch : int, default 0
        Non-negative epoch number: each (seed, epoch) pair gives its own
        reproducible order.

    Returns
    -------
    generator of numpy.ndarray
        int64 index arrays; together they hold every index exactly once.

    Raises
    ------
    ValueError
        If ``n_samples`` or ``batch_size`` is less than 1, or ``seed`` or
        ``epoch`` is negative.
    TypeError
        If an argument has the wrong type (e.g. a float ``batch_size``).

    Examples
    --------
    >>> [b.tolist() for b in iterate_minibatches(5, 2, shuffle=False)]
    [[0, 1], [2, 3], [4]]
    >>> batches = list(iterate_minibatches(5, 2, seed=3, epoch=1))
    >>> sorted(int(i) for b in batches for i in b)
    [0, 1, 2, 3, 4]
    """
    where = "iterate_minibatches"
    n_samples = _check_int(n_samples, where, "n_samples", 1)
    batch_size = _check_int(batch_size, where, "batch_size", 1)
    shuffle = _check_bool(shuffle, where, "shuffle")
    seed = _check_int(seed, where, "seed", 0)
    epoch = _check_int(epoch, where, "epoch", 0)
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(n_samples).astype(np.int64, copy=False)
    else:
        order = np.arange(n_samples, dtype=np.int64)
    return _batches(order, batch_size)


def _batches(order, batch_size):
    for start in range(0, order.shape[0], batch_size):
        yield order[start : start + batch_size]
