"""Data preparation: train/dev/test splits, standardization and minibatch indices.

Only numpy and the standard library are used.
"""

from __future__ import annotations

import numbers
from collections import deque

import numpy as np

from ._validation import check_array, check_bool, check_scalar

__all__ = ["split", "Standardizer", "epoch_order", "iterate_minibatches"]

_PART_NAMES = ("train", "dev", "test")


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
    """Return ``ratios`` as 2 or 3 positive floats summing to 1 within 1e-9."""
    try:
        values = tuple(ratios)
    except TypeError:
        values = None  # not a sequence: TypeError below
    if values is None or len(values) not in (2, 3) or not all(
        isinstance(r, numbers.Real) and not isinstance(r, (bool, np.bool_)) for r in values
    ):
        raise (TypeError if values is None else ValueError)(
            f"{where}: ratios must be a sequence of 2 or 3 numbers; got {ratios!r}."
        )
    values = tuple(check_scalar(f"ratios[{i}]", r, where=where, low=0, low_open=True)
                   for i, r in enumerate(values))
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
    stratify = check_bool("stratify", stratify, where=where)
    seed = check_scalar("seed", seed, where=where, low=0, integer=True)
    X, y = np.asarray(X), np.asarray(y)
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
    order = rng.permutation(n)
    if not stratify:
        parts = np.split(order, np.cumsum(sizes)[:-1])
    else:
        if y.ndim != 1:
            raise ValueError(
                f"{where}: y must be 1-D class labels when stratify=True; "
                f"got shape {y.shape}."
            )
        _, label_index, counts = np.unique(y, return_inverse=True, return_counts=True)
        label_index = label_index.reshape(-1)
        per_class = _controlled_rounding(counts, sizes)
        # Group the shuffled rows by class, keeping the shuffled order inside each class.
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
        X = check_array("X", X, where="Standardizer.fit", dtype=None)
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

    def _check_fitted(self, where):
        if self.mean_ is None:
            raise RuntimeError(f"{where}: call fit first; this Standardizer is not fitted.")

    def _fitted_input(self, X, where):
        """``X`` checked against the fit, and ``mean_`` and ``scale_`` in X's float dtype."""
        self._check_fitted(where)
        X = check_array("X", X, where=where, dtype=None, n_cols=self.n_features_)
        dtype = X.dtype if X.dtype.kind == "f" else np.dtype(np.float32)
        return X, self.mean_.astype(dtype), self.scale_.astype(dtype)

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
        X, mean, scale = self._fitted_input(X, "Standardizer.transform")
        out = np.subtract(X, mean, dtype=mean.dtype, order="C")
        out /= scale
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
        X, mean, scale = self._fitted_input(X, "Standardizer.inverse_transform")
        out = np.multiply(X, scale, dtype=scale.dtype, order="C")
        out += mean
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
        self._check_fitted("Standardizer.get_state")
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
            If ``state`` is not a mapping or an array is not numeric.

        Examples
        --------
        >>> import numpy as np
        >>> s = Standardizer.from_state({"mean": np.array([2.0]), "scale": np.array([1.0])})
        >>> s.transform(np.array([[3.0]])).tolist()
        [[1.0]]
        """
        where = "Standardizer.from_state"
        if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
            raise TypeError(f'{where}: state must be a dict with keys "mean" and "scale"; '
                            f"got {type(state).__name__}.")
        if "mean" not in state or "scale" not in state:
            raise ValueError(f'{where}: state must have keys "mean" and "scale"; got keys '
                             f"{sorted(map(str, state.keys()))}.")
        mean, scale = (check_array(f'state["{key}"]', state[key], where=where, dtype=np.float64,
                                   ndim=1).copy() for key in ("mean", "scale"))
        if mean.shape != scale.shape:
            raise ValueError(f'{where}: state["mean"] and state["scale"] must have the same '
                             f"length; got {mean.size} and {scale.size}.")
        if not (scale > 0).all():
            raise ValueError(f'{where}: state["scale"] must be positive; got minimum {scale.min()}.')
        obj = cls()
        obj.mean_, obj.scale_, obj.n_features_ = mean, scale, mean.size
        return obj


def epoch_order(n_samples, shuffle, seed, epoch, *, where="epoch_order"):
    """The order in which one epoch visits the rows: a permutation or ``0, 1, ...``.

    Parameters
    ----------
    n_samples : int
        Number of rows, at least 1.
    shuffle : bool
        If True the order is ``numpy.random.default_rng([seed, epoch]).permutation(n_samples)``;
        otherwise ``0, 1, ..., n_samples - 1``.
    seed : int
        Non-negative seed.
    epoch : int
        Non-negative epoch number: each (seed, epoch) pair gives its own
        reproducible order.
    where : str, default "epoch_order"
        Name of the caller, used in error messages.

    Returns
    -------
    numpy.ndarray of shape (n_samples,), int64
        Every index in ``range(n_samples)`` exactly once.

    Raises
    ------
    ValueError
        If ``n_samples`` is less than 1, or ``seed`` or ``epoch`` is negative.
    TypeError
        If an argument has the wrong type (e.g. a float ``seed``).

    Examples
    --------
    >>> epoch_order(4, shuffle=False, seed=0, epoch=0).tolist()
    [0, 1, 2, 3]
    >>> sorted(epoch_order(4, shuffle=True, seed=3, epoch=1).tolist())
    [0, 1, 2, 3]
    """
    n_samples = check_scalar("n_samples", n_samples, where=where, low=1, integer=True)
    shuffle = check_bool("shuffle", shuffle, where=where)
    seed = check_scalar("seed", seed, where=where, low=0, integer=True)
    epoch = check_scalar("epoch", epoch, where=where, low=0, integer=True)
    if not shuffle:
        return np.arange(n_samples, dtype=np.int64)
    return np.random.default_rng([seed, epoch]).permutation(n_samples).astype(np.int64, copy=False)


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
        If True the rows are visited in a permutation drawn from (seed, epoch),
        otherwise in order: the order of :func:`epoch_order`.
    seed, epoch : int, default 0
        Non-negative seed and epoch number, as in :func:`epoch_order`.

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
    order = epoch_order(n_samples, shuffle, seed, epoch, where=where)
    batch_size = check_scalar("batch_size", batch_size, where=where, low=1, integer=True)
    return (order[start : start + batch_size] for start in range(0, order.shape[0], batch_size))
