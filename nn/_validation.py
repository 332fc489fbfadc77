"""Checks of arrays, labels and scalars: the one source of the API's error messages.

Every message names where it was raised, the argument, what is needed and what was
got, e.g. ``Sequential.fit: lr must be > 0; got -0.1.``
"""
import numbers
import os
import tempfile

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype, where="Sequential"):
    """Return the model dtype, float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{where}: dtype must be float32 or float64; got {dtype!r}.") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{where}: dtype must be float32 or float64; got {dt}.")
    return dt


def check_array(name, a, *, where, dtype, ndim=2, n_cols=None, n_rows=None, finite=True):
    """Validate a numeric array and return it C-contiguous in ``dtype``.

    Rejects non-numeric, complex and object arrays (TypeError), wrong ndim, empty
    arrays, wrong column or row counts, and NaN or infinity (ValueError). With
    ``dtype=None`` the array is returned as it is (no conversion, no copy).
    """
    if isinstance(a, (str, bytes)) or a is None:
        raise TypeError(f"{where}: {name} must be a numeric array; got {type(a).__name__}.")
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{where}: {name} must be a numeric array; got {type(a).__name__} "
                        f"that NumPy cannot convert ({exc}).") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{where}: {name} must be numeric; got dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{where}: {name} must be real; got dtype {arr.dtype}.")
    if arr.ndim != ndim:
        raise ValueError(f"{where}: {name} must be {ndim}-D; got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{where}: {name} is empty; got shape {arr.shape}.")
    if n_cols is not None and arr.shape[1] != n_cols:
        raise ValueError(f"{where}: {name} must have {n_cols} columns (features); "
                         f"got shape {arr.shape}.")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise ValueError(f"{where}: {name} must have {n_rows} rows, one per sample of X; "
                         f"got {arr.shape[0]}.")
    if finite and np.issubdtype(arr.dtype, np.floating) and not all_finite(arr):
        raise ValueError(f"{where}: {name} contains NaN or infinite values.")
    if dtype is None:
        return arr
    with np.errstate(over="ignore"):  # too-large values get the clear error below
        out = np.ascontiguousarray(arr, dtype=dtype)
    if finite and out.dtype != arr.dtype and not all_finite(out):
        raise ValueError(f"{where}: {name} has values too large for {np.dtype(dtype)}.")
    return out


def check_csr(name, X, *, where, dtype, n_cols=None):
    """Validate a ``scipy.sparse`` matrix or array as ``check_array`` does a dense one
    and return it as CSR with sorted column indices and no duplicates (repeats summed).

    Other formats (CSC, COO, ...) are converted to CSR once; the data are converted to
    ``dtype`` once when they differ (``dtype=None``: kept). The caller's matrix is never
    modified (a copy is made before any change). Rejects complex or non-numeric data
    (TypeError), other than 2-D, empty, wrong column counts, NaN or infinity in the
    stored values (ValueError).
    """
    kind = type(X).__name__
    if X.ndim != 2:
        raise ValueError(f"{where}: {name} must be 2-D; got a sparse {kind} of shape "
                         f"{X.shape}.")
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise TypeError(f"{where}: {name} must be numeric; got a sparse {kind} of dtype "
                        f"{X.dtype}.")
    if np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"{where}: {name} must be real; got a sparse {kind} of dtype "
                        f"{X.dtype}.")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{where}: {name} is empty; got shape {X.shape}.")
    if n_cols is not None and X.shape[1] != n_cols:
        raise ValueError(f"{where}: {name} must have {n_cols} columns (features); "
                         f"got shape {X.shape}.")
    csr = X.tocsr()   # the same object when X is CSR already
    if np.issubdtype(csr.dtype, np.floating) and not all_finite(csr.data):
        raise ValueError(f"{where}: {name} contains NaN or infinite values.")
    if dtype is not None and csr.dtype != dtype:
        with np.errstate(over="ignore"):  # too-large values get the clear error below
            csr = csr.astype(dtype)
        if not all_finite(csr.data):
            raise ValueError(f"{where}: {name} has values too large for {np.dtype(dtype)}.")
    if not csr.has_canonical_format:
        csr = csr.copy() if csr is X else csr
        with np.errstate(over="ignore"):
            csr.sum_duplicates()
        if np.issubdtype(csr.dtype, np.floating) and not all_finite(csr.data):
            raise ValueError(f"{where}: {name} has repeated entries whose sum is too large "
                             f"for {csr.dtype}.")
    return csr


def all_finite(a):
    """True when every element of the float array ``a`` is finite, without a
    boolean temporary in the usual case."""
    # A finite sum proves every element finite (NaN and infinity propagate); only when
    # the sum is not finite (a bad value, or an overflow of finite ones) check each.
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(a.sum(dtype=a.dtype if a.dtype.itemsize >= 4 else np.float32)):
            return True
    return bool(np.isfinite(a).all())


def check_labels(name, y, *, where, n_classes, n_rows):
    """Class labels as int64 indices in [0, n_classes); one-hot rows are accepted."""
    if isinstance(y, (str, bytes)) or y is None:
        raise TypeError(f"{where}: {name} must be an array of class labels; "
                        f"got {type(y).__name__}.")
    arr = np.asarray(y)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{where}: {name} must hold integer class labels; got dtype {arr.dtype}.")
    if arr.ndim == 2 and arr.shape[1] == n_classes and n_classes > 1:
        if arr.size and not (np.isin(arr, (0, 1)).all() and (arr.sum(axis=1) == 1).all()):
            raise ValueError(f"{where}: {name} given as 2-D must be one-hot rows with a "
                             f"single 1 among {n_classes} columns.")
        arr = arr.argmax(axis=1)
    if arr.ndim != 1:
        raise ValueError(f"{where}: {name} must be 1-D class labels (n_samples,) or one-hot "
                         f"(n_samples, {n_classes}); got shape {arr.shape}.")
    if arr.shape[0] != n_rows:
        raise ValueError(f"{where}: {name} must have {n_rows} labels, one per row of X; "
                         f"got {arr.shape[0]}.")
    if arr.size == 0:
        raise ValueError(f"{where}: {name} is empty.")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            raise ValueError(f"{where}: {name} must hold integer class labels; got "
                             f"non-integer values such as {arr[bad][:1]}.")
    low, high = arr.min(), arr.max()  # before the cast: 1e20 must not wrap around
    if low < 0 or high >= n_classes:
        bad = low if low < 0 else high
        raise ValueError(f"{where}: {name} contains label {bad}, outside [0, {n_classes}).")
    return np.ascontiguousarray(arr.astype(np.int64))


def check_scalar(name, value, *, where, low=None, high=None, low_open=False,
                 high_open=False, integer=False):
    """A real (or integer) scalar within bounds; returns it as float or int."""
    kind = "an integer" if integer else "a real number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (
            integer and not isinstance(value, numbers.Integral)):
        raise TypeError(f"{where}: {name} must be {kind}; got {value!r}.")
    value = int(value) if integer else float(value)
    if not integer and not np.isfinite(value):
        raise ValueError(f"{where}: {name} must be finite; got {value}.")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{where}: {name} must be {'>' if low_open else '>='} {low}; "
                         f"got {value}.")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{where}: {name} must be {'<' if high_open else '<='} {high}; "
                         f"got {value}.")
    return value


def check_choice(name, value, choices, *, where):
    """A string among ``choices`` (a dict or sequence of names)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{where}: unknown {name} {value!r}; expected one of "
                         f"{', '.join(sorted(map(repr, choices)))}.")
    return value


def check_bool(name, value, *, where):
    """True or False (a Python or NumPy bool); returns a Python bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be True or False; got {value!r}.")
    return bool(value)


def check_path(name, value, *, where):
    """A file-system path (str, bytes or os.PathLike); returns it as a str."""
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise TypeError(f"{where}: {name} must be a str or os.PathLike path; got {value!r}.")
    return os.fsdecode(value)


def check_output_path(name, value, *, where, format=None):
    """A path a file will be written to later: its folder must exist and be writable
    now, so a run does not fail at its end. ``format(path, 0)`` fills a template's
    fields first. Returns the path as a str."""
    path = check_path(name, value, where=where)
    if not path:
        raise ValueError(f"{where}: {name} is empty; give a file name.")
    probe = format(path, 0) if format is not None else path
    folder = os.path.dirname(os.path.abspath(probe))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{where}: {name} {path!r} is in a folder that does not "
                                f"exist ({folder!r}); create it first.")
    if os.path.isdir(probe):
        raise IsADirectoryError(f"{where}: {name} {path!r} is a folder; give a file name.")
    try:
        # The temporary file a save makes first (nn._files.atomic_write): a read-only
        # mount or a full disk shows here, where os.access would pass for root.
        fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    except OSError as exc:
        raise PermissionError(f"{where}: {name} {path!r} is in a folder this process "
                              f"cannot write to ({folder!r}: {exc.strerror}).") from exc
    os.close(fd)
    os.unlink(temporary)
    return path


def check_weights(weights, n_rows, where, name="sample_weight"):
    """Per-row weights: finite, >= 0, one per row, not all zero; float64."""
    w = check_array(name, weights, where=where, dtype=np.float64, ndim=1, n_rows=n_rows)
    if w.min() < 0:
        raise ValueError(f"{where}: {name} must be >= 0; got {w.min()}.")
    if not w.sum() > 0:
        raise ValueError(f"{where}: the sample weights are all zero; at least one row "
                         f"must count.")
    return w


# -- hyperparameter ranges, each stated once ----------------------------------------

def check_keep_prob(value, where, name="keep_prob"):
    """Dropout's keep probability: a real number in (0, 1] (1 keeps everything)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a real number in (0, 1]; got {value!r}.")
    if not 0.0 < value <= 1.0:  # also False for NaN
        raise ValueError(f"{where}: {name} must be in (0, 1]; got {value}.")
    return float(value)


def check_beta(name, value, where):
    """An exponential averaging weight (momentum, RMSprop, Adam): in [0, 1)."""
    return check_scalar(name, value, where=where, low=0.0, high=1.0, high_open=True)


def check_lr(value, where, name="lr"):
    """A learning rate: > 0."""
    return check_scalar(name, value, where=where, low=0.0, low_open=True)
