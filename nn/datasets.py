"""Data sets: the embedded 8x8 digits and a reader for MNIST-format IDX files.

Only numpy and the standard library are used; nothing here needs the network.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from dataclasses import dataclass
from importlib import resources

import numpy as np

from ._validation import check_choice, check_path, check_scalar

__all__ = ["Dataset", "load_digits", "load_idx", "load_mnist"]

_DIGITS_DESCRIPTION = (
    "Optical Recognition of Handwritten Digits (8x8): 1797 images of "
    "handwritten digits, 64 features (an 8x8 image, row by row) with integer "
    "values 0..16, 10 classes (digits 0..9).\n"
    'Source: E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten '
    'Digits", UCI Machine Learning Repository, 1998, DOI 10.24432/C50P49. '
    "Licensed CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). "
    "This copy was taken from scikit-learn's distribution "
    "(sklearn/datasets/data/digits.csv.gz); see nn/_data/DIGITS_LICENSE.txt."
)

# IDX type byte -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"

# File names tried by load_mnist, in order, for each (kind, part).
_MNIST_PREFIX = {"train": "train", "test": "t10k"}


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A labelled classification data set held in memory.

    The constructor converts its inputs: ``X`` becomes a C-contiguous float32
    array and ``y`` an int64 array.

    Parameters
    ----------
    X : array_like of shape (n_samples, n_features)
        Features, one row per sample. Stored as C-contiguous float32.
    y : array_like of shape (n_samples,)
        Integer class labels in ``0 .. n_classes - 1``. Stored as int64.
    image_shape : tuple of int
        Shape of one sample as an image, e.g. ``(8, 8)`` or ``(28, 28)``;
        its product equals ``n_features``.
    n_classes : int
        Number of classes.
    description : str
        Human-readable description including the source and licence.

    Raises
    ------
    ValueError
        If the shapes disagree, labels are not integers in
        ``0 .. n_classes - 1``, ``n_classes`` is less than 1 or ``image_shape``
        does not match the features.
    TypeError
        If ``n_classes`` is not an int or ``description`` not a str.

    Notes
    -----
    The dataclass is frozen (fields cannot be reassigned) but the arrays
    themselves stay writable; copy them before modifying in place if the
    original values are still needed.

    Examples
    --------
    >>> import numpy as np
    >>> ds = Dataset(np.zeros((2, 4)), np.array([0, 1]), (2, 2), 2, "toy")
    >>> ds.X.dtype, ds.y.dtype, ds.n_samples, ds.n_features
    (dtype('float32'), dtype('int64'), 2, 4)
    >>> X, y = ds                      # unpacks as features and labels
    >>> X.shape, y.tolist()
    ((2, 4), [0, 1])
    """

    X: np.ndarray
    y: np.ndarray
    image_shape: tuple
    n_classes: int
    description: str

    def __post_init__(self):
        where = "Dataset"
        X = np.ascontiguousarray(self.X, dtype=np.float32)
        if X.ndim != 2:
            raise ValueError(
                f"{where}: X must be a 2-D array (n_samples, n_features); "
                f"got an array with shape {X.shape}."
            )
        y_in = np.asarray(self.y)
        if y_in.ndim != 1 or y_in.shape[0] != X.shape[0]:
            raise ValueError(
                f"{where}: y must be a 1-D array with one label per row of X "
                f"({X.shape[0]}); got an array with shape {y_in.shape}."
            )
        if y_in.size and not np.issubdtype(y_in.dtype, np.integer):
            raise ValueError(
                f"{where}: y must hold integer labels; got dtype {y_in.dtype}."
            )
        y = np.ascontiguousarray(y_in, dtype=np.int64)
        n_classes = check_scalar("n_classes", self.n_classes, where=where, low=1, integer=True)
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(
                f"{where}: y must hold labels in 0..{n_classes - 1}; "
                f"got labels in {y.min()}..{y.max()}."
            )
        image_shape = tuple(int(s) for s in self.image_shape)
        if int(np.prod(image_shape, dtype=np.int64)) != X.shape[1]:
            raise ValueError(
                f"{where}: image_shape must have as many pixels as X has features "
                f"({X.shape[1]}); got {image_shape}."
            )
        if not isinstance(self.description, str):
            raise TypeError(f"{where}: description must be a str; got {self.description!r}.")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "image_shape", image_shape)
        object.__setattr__(self, "n_classes", n_classes)

    @property
    def n_samples(self) -> int:
        """Number of samples (rows of ``X``)."""
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        """Number of features (columns of ``X``)."""
        return self.X.shape[1]

    def __len__(self) -> int:
        """Number of samples."""
        return self.X.shape[0]

    def __iter__(self):
        """``X, y = dataset``: the features and labels, as scikit-learn's
        ``return_X_y`` gives them (``len`` stays the number of samples)."""
        return iter((self.X, self.y))

    def __repr__(self) -> str:
        first_line = self.description.splitlines()[0] if self.description else ""
        if len(first_line) > 60:
            first_line = first_line[:57] + "..."
        return (
            f"Dataset(n_samples={self.n_samples}, n_features={self.n_features}, "
            f"image_shape={self.image_shape}, n_classes={self.n_classes}, "
            f"description={first_line!r})"
        )


def load_digits() -> Dataset:
    """Load the embedded 8x8 handwritten digits data set.

    The UCI "Optical Recognition of Handwritten Digits" data (E. Alpaydin and
    C. Kaynak, 1998, DOI 10.24432/C50P49, CC BY 4.0) as distributed by
    scikit-learn, read from the package data so it works offline and from an
    installed wheel. The file is read on every call; the returned arrays are
    fresh copies.

    Returns
    -------
    Dataset
        ``X`` float32 of shape (1797, 64) with integer values 0..16 (not
        scaled), ``y`` int64 labels 0..9, ``image_shape`` (8, 8),
        ``n_classes`` 10.

    Raises
    ------
    ValueError
        If the embedded file is damaged (wrong number of columns or values out
        of range).

    Examples
    --------
    >>> ds = load_digits()
    >>> ds.X.shape, ds.X.dtype, ds.y.shape, ds.image_shape, ds.n_classes
    ((1797, 64), dtype('float32'), (1797,), (8, 8), 10)
    >>> int(ds.X.max()), int(ds.y.max())
    (16, 9)
    """
    where = "load_digits"
    resource = resources.files("nn") / "_data" / "digits.csv.gz"
    raw = resource.read_bytes()
    text = gzip.decompress(raw).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2)
    if table.shape[1] != 65:
        raise ValueError(
            f"{where}: the embedded digits file must have 65 columns "
            f"(64 features and the label); got {table.shape[1]}."
        )
    X = table[:, :64]
    labels = table[:, 64]
    for name, values, high in (("features", X, 16), ("labels", labels, 9)):
        if values.min() < 0 or values.max() > high or np.any(values != np.round(values)):
            raise ValueError(
                f"{where}: the embedded digits {name} must be integers in 0..{high}; "
                f"got values in {values.min()}..{values.max()}."
            )
    return Dataset(
        X=X.astype(np.float32),
        y=labels.astype(np.int64),
        image_shape=(8, 8),
        n_classes=10,
        description=_DIGITS_DESCRIPTION,
    )


def load_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST file format), gzip-compressed or raw.

    The format is: two zero bytes, a type byte, a byte giving the number of
    dimensions, one big-endian uint32 size per dimension, then the data in
    big-endian order. Gzip compression is detected from the magic bytes
    ``1f 8b``, whatever the file name.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.

    Returns
    -------
    numpy.ndarray
        A new, writable array with the shape from the header and the type
        from the type byte, in native byte order: 0x08 uint8, 0x09 int8,
        0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    TypeError
        If ``path`` is not a path.
    ValueError
        If the file is empty, is not valid gzip despite starting with the gzip
        magic bytes, does not start with two zero bytes, has an unknown type
        code or no dimensions, or holds fewer or more data bytes than the
        header announces. The message names the file.

    Examples
    --------
    >>> import os, struct, tempfile
    >>> import numpy as np
    >>> data = struct.pack(">BBBBI", 0, 0, 0x08, 1, 3) + bytes([7, 8, 9])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "labels-idx1-ubyte")
    ...     with open(p, "wb") as f:
    ...         _ = f.write(data)
    ...     load_idx(p)
    array([7, 8, 9], dtype=uint8)
    """
    where = "load_idx"
    path = check_path("path", path, where=where)
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ValueError(f"{where}: file {path!r} must be an IDX file; got an empty file.")
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(
                f"{where}: file {path!r} must be a valid gzip stream (it starts "
                f"with the gzip magic bytes 1f 8b); got a damaged or truncated "
                f"stream ({exc})."
            ) from exc
        if not data:
            raise ValueError(
                f"{where}: file {path!r} must hold an IDX file; got an empty "
                f"gzip stream."
            )
    if len(data) < 4:
        raise ValueError(
            f"{where}: file {path!r} must start with a 4-byte IDX header; "
            f"got only {len(data)} bytes."
        )
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{where}: file {path!r} must start with two zero bytes (IDX magic "
            f"number); got bytes {data[:4].hex(' ')}. Is it an IDX file?"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(
            f"{where}: file {path!r} must have an IDX type code in {{{known}}}; "
            f"got 0x{type_code:02X}."
        )
    if ndim == 0:
        raise ValueError(
            f"{where}: file {path!r} must have at least one dimension; "
            f"got 0 in the header."
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(
            f"{where}: file {path!r} must have a {header_size}-byte header for "
            f"{ndim} dimensions; got only {len(data)} bytes (truncated header)."
        )
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    dtype = _IDX_DTYPES[type_code]
    count = 1
    for s in shape:
        count *= s  # Python ints: no overflow for huge (bogus) headers.
    expected = count * dtype.itemsize
    actual = len(data) - header_size
    if actual != expected:
        problem = "truncated" if actual < expected else "extra bytes at the end"
        raise ValueError(
            f"{where}: file {path!r} must hold {expected} data bytes for shape "
            f"{shape} of {dtype.newbyteorder('=').name}; got {actual} ({problem})."
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header_size)
    # astype copies: the result is writable, owns its memory, native byte order.
    return array.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def _mnist_candidates(kind, part):
    """File names to try for one MNIST file, most common first."""
    prefix = _MNIST_PREFIX[kind]
    ndim = 3 if part == "images" else 1
    names = []
    for sep in ("-", "."):
        base = f"{prefix}-{part}{sep}idx{ndim}-ubyte"
        names.extend([base + ".gz", base])
    return names


def load_mnist(folder, kind="train") -> Dataset:
    """Load MNIST-format images and labels (MNIST, Fashion-MNIST, ...) from a folder.

    Parameters
    ----------
    folder : str or os.PathLike
        Folder holding the IDX files: ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte``, each optionally gzip-compressed with a
        ``.gz`` suffix. The variant with a dot (``train-images.idx3-ubyte``)
        is accepted too.
    kind : {"train", "test"}, default "train"
        Which split to load (``"test"`` reads the ``t10k`` files).

    Returns
    -------
    Dataset
        ``X`` float32 of shape (n, rows * cols) with the raw pixel values
        (0..255 for MNIST; no scaling, standardize them yourself), ``y``
        int64 labels, ``image_shape`` (rows, cols), ``n_classes`` 10.

    Raises
    ------
    ValueError
        If ``kind`` is not "train" or "test", the images are not 3-D or the
        labels not 1-D, the image and label counts differ, labels are outside
        0..9, or a file is not a valid IDX file (see :func:`load_idx`).
    FileNotFoundError
        If the folder does not exist or a file is missing; the message lists
        the names that were looked for.
    NotADirectoryError
        If ``folder`` is not a directory.
    TypeError
        If ``folder`` is not a path.

    Examples
    --------
    >>> train = load_mnist("data/mnist")  # doctest: +SKIP
    >>> train.X.shape, train.image_shape  # doctest: +SKIP
    ((60000, 784), (28, 28))
    """
    where = "load_mnist"
    kind = check_choice("kind", kind, _MNIST_PREFIX, where=where)
    folder = check_path("folder", folder, where=where)
    if not os.path.isdir(folder):
        exists = os.path.exists(folder)
        raise (NotADirectoryError if exists else FileNotFoundError)(
            f"{where}: folder must be an existing folder with MNIST-format files; got "
            f"{folder!r}, which {'is not a folder' if exists else 'does not exist'}."
        )
    found = {}
    missing = []
    for part in ("images", "labels"):
        names = _mnist_candidates(kind, part)
        paths = [os.path.join(folder, name) for name in names]
        found[part] = next((path for path in paths if os.path.isfile(path)), None)
        if found[part] is None:
            missing.append(f"{part}: one of {', '.join(names)}")
    if missing:
        raise FileNotFoundError(
            f"{where}: folder {folder!r} must hold the {kind} images and labels; "
            f"got no file for " + "; ".join(missing) + "."
        )
    images = load_idx(found["images"])
    labels = load_idx(found["labels"])
    for part, array, ndim in (("images", images, 3), ("labels", labels, 1)):
        if array.ndim != ndim:
            raise ValueError(
                f"{where}: {part} file {found[part]!r} must hold a {ndim}-D array; "
                f"got shape {array.shape}."
            )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{where}: the image and label counts must agree; got "
            f"{images.shape[0]} images in {found['images']!r} and "
            f"{labels.shape[0]} labels in {found['labels']!r}."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{where}: labels file {found['labels']!r} must hold integers; "
            f"got dtype {labels.dtype}."
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(
            f"{where}: labels in {found['labels']!r} must be in 0..9; got "
            f"values in {labels.min()}..{labels.max()}."
        )
    n, rows, cols = images.shape
    description = (
        f"MNIST-format data set ({kind} split) read from {folder!r}: {n} images "
        f"of {rows}x{cols} pixels with raw values (not scaled), 10 classes.\n"
        f"Images: {os.path.basename(found['images'])}; labels: "
        f"{os.path.basename(found['labels'])}. Cite and license according to "
        f"the source of these files (e.g. MNIST: LeCun, Cortes and Burges; "
        f"Fashion-MNIST: Xiao, Rasul and Vollgraf, MIT licence)."
    )
    return Dataset(
        X=images.reshape(n, rows * cols).astype(np.float32),
        y=labels.astype(np.int64),
        image_shape=(rows, cols),
        n_classes=10,
        description=description,
    )
