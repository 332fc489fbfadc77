"""Tests for nn.datasets: the embedded digits data and the IDX / MNIST readers.

IDX files are written into tmp_path by a small writer below; nothing here
uses the network or any shared data folder.
"""

import dataclasses
import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nn import datasets
from nn.datasets import Dataset, load_digits, load_idx, load_mnist

IDX_TYPE_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def idx_bytes(array, type_code=None, shape=None, prefix=b"\x00\x00"):
    """Encode ``array`` as IDX bytes; the keyword arguments allow broken headers."""
    array = np.asarray(array)
    if type_code is None:
        type_code = IDX_TYPE_CODES[array.dtype]
    if shape is None:
        shape = array.shape
    header = prefix + bytes([type_code, len(shape)])
    header += b"".join(struct.pack(">I", s) for s in shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, gz=False, extra=b"", cut=0, **kwargs):
    """Write ``array`` as an IDX file, optionally gzip-compressed.

    ``extra`` bytes are appended and ``cut`` bytes removed from the end of the
    uncompressed content, to build truncated or overlong files.
    """
    data = idx_bytes(array, **kwargs) + extra
    if cut:
        data = data[:-cut]
    if gz:
        data = gzip.compress(data, mtime=0)
    Path(path).write_bytes(data)
    return Path(path)


# ---------------------------------------------------------------- load_digits

DIGITS_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_load_digits_shape_dtype_and_values():
    ds = load_digits()
    assert isinstance(ds, Dataset)
    assert ds.X.shape == (1797, 64)
    assert ds.X.dtype == np.float32
    assert ds.X.flags["C_CONTIGUOUS"]
    assert ds.y.shape == (1797,)
    assert ds.y.dtype == np.int64
    assert ds.image_shape == (8, 8)
    assert ds.n_classes == 10
    assert ds.X.min() == 0 and ds.X.max() == 16
    np.testing.assert_array_equal(ds.X, np.round(ds.X))
    assert set(np.unique(ds.y).tolist()) == set(range(10))
    counts = np.bincount(ds.y, minlength=10)
    assert counts.sum() == 1797
    assert (counts > 0).all()
    assert counts.tolist() == DIGITS_CLASS_COUNTS
    # First line of the file: a zero.
    assert ds.X[0, :8].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]
    assert ds.y[0] == 0


def test_load_digits_description_has_attribution():
    text = load_digits().description
    for needle in ("Alpaydin", "Kaynak", "10.24432/C50P49", "CC BY 4.0", "scikit-learn"):
        assert needle in text


def test_load_digits_same_result_twice_and_independent_copies():
    a = load_digits()
    b = load_digits()
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    a.X[0, 0] = 99.0  # must not leak into later calls
    assert load_digits().X[0, 0] == 0.0


def test_digits_licence_file_is_shipped():
    folder = Path(datasets.__file__).parent / "_data"
    assert (folder / "digits.csv.gz").is_file()
    licence = (folder / "DIGITS_LICENSE.txt").read_text()
    assert "CC BY 4.0" in licence and "10.24432/C50P49" in licence


def test_load_digits_does_not_import_sklearn():
    root = Path(datasets.__file__).resolve().parent.parent
    code = (
        "import sys; from nn.datasets import load_digits; load_digits(); "
        "sys.exit(1 if 'sklearn' in sys.modules else 0)"
    )
    env = dict(os.environ, PYTHONPATH=str(root))
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, timeout=60)
    assert result.returncode == 0


# -------------------------------------------------------------------- Dataset


def test_dataset_converts_and_is_frozen():
    ds = Dataset(np.ones((3, 4), dtype=np.float64), [0, 1, 1], [2, 2], 2, "toy")
    assert ds.X.dtype == np.float32 and ds.y.dtype == np.int64
    assert ds.image_shape == (2, 2)
    assert len(ds) == 3 and ds.n_features == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.n_classes = 3
    assert "n_samples=3" in repr(ds)
    X, y = ds
    assert X is ds.X and y is ds.y
    X, y = load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(X=np.ones(3)), "X must be a 2-D array"),
        (dict(y=np.zeros(2, dtype=int)), "one label per row"),
        (dict(y=np.array([0.0, 1.0, 1.0])), "integer labels"),
        (dict(y=np.array([0, 1, 2])), r"labels in 0\.\.1"),
        (dict(image_shape=(3, 2)), "image_shape"),
        (dict(n_classes=0), "n_classes must be >= 1; got 0"),
    ],
)
def test_dataset_validation(kwargs, match):
    args = dict(X=np.ones((3, 4)), y=np.array([0, 1, 1]), image_shape=(2, 2), n_classes=2, description="toy")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Dataset(**args)


# ------------------------------------------------------------------- load_idx


@pytest.mark.parametrize("dtype", list(IDX_TYPE_CODES))
@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_round_trip(tmp_path, dtype, gz):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None:
        array = rng.integers(info.min, info.max, size=(5, 3, 2), endpoint=True).astype(dtype)
    else:
        array = rng.standard_normal((5, 3, 2)).astype(dtype)
    path = write_idx(tmp_path / ("a.idx.gz" if gz else "a.idx"), array, gz=gz)
    out = load_idx(path)
    assert out.dtype == dtype and out.dtype.isnative
    assert out.shape == (5, 3, 2)
    np.testing.assert_array_equal(out, array)
    out[0, 0, 0] = 0  # writable, owns its data
    assert load_idx(str(path)).shape == (5, 3, 2)  # str paths work too


def test_load_idx_one_dimensional_and_empty_dimension(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    np.testing.assert_array_equal(load_idx(write_idx(tmp_path / "l", labels)), labels)
    empty = load_idx(write_idx(tmp_path / "e", np.zeros((0, 28, 28), dtype=np.uint8)))
    assert empty.shape == (0, 28, 28)


def test_load_idx_detects_gzip_by_magic_not_suffix(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz_no_suffix = write_idx(tmp_path / "images-idx2-ubyte", array, gz=True)
    raw_with_suffix = write_idx(tmp_path / "images-idx2-ubyte.gz", array, gz=False)
    np.testing.assert_array_equal(load_idx(gz_no_suffix), array)
    np.testing.assert_array_equal(load_idx(raw_with_suffix), array)


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_opens_the_file_once(tmp_path, monkeypatch, gz):
    path = write_idx(tmp_path / "x", np.arange(6, dtype=np.int16), gz=gz)
    calls = []

    def counting_open(*args, **kwargs):
        calls.append(args[0])
        return open(*args, **kwargs)

    monkeypatch.setattr(datasets, "open", counting_open, raising=False)
    monkeypatch.setattr(gzip, "open", lambda *a, **k: pytest.fail("gzip.open re-reads the file"))
    load_idx(path)
    assert len(calls) == 1


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(prefix=b"\x01\x00"), "two zero bytes"),
        (dict(prefix=b"\x00\x07"), "two zero bytes"),
        (dict(type_code=0x0A), "type code .* got 0x0A"),
        (dict(cut=1), "truncated"),
        (dict(extra=b"\x00"), "extra bytes"),
        (dict(shape=(5, 3)), "truncated"),  # header claims 15 values, file holds 6
        (dict(shape=()), "at least one dimension"),
    ],
)
def test_load_idx_errors_name_the_file(tmp_path, gz, kwargs, match):
    path = write_idx(tmp_path / "broken-idx", np.arange(6, dtype=np.uint8).reshape(2, 3), gz=gz, **kwargs)
    with pytest.raises(ValueError, match=match) as info:
        load_idx(path)
    assert "broken-idx" in str(info.value)


def test_load_idx_truncated_header(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x02")  # 3 dims, one size given
    with pytest.raises(ValueError, match="truncated header"):
        load_idx(path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="4-byte IDX header"):
        load_idx(path)


def test_load_idx_empty_files(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty file") as info:
        load_idx(path)
    assert "empty" in str(info.value)
    gz_path = tmp_path / "empty.gz"
    gz_path.write_bytes(gzip.compress(b""))
    with pytest.raises(ValueError, match="empty gzip stream"):
        load_idx(gz_path)


def test_load_idx_damaged_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))
    path = tmp_path / "damaged.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="gzip") as info:
        load_idx(path)
    assert "damaged.gz" in str(info.value)


def test_load_idx_missing_file_and_bad_type(tmp_path):
    missing = tmp_path / "nope-idx1-ubyte"
    with pytest.raises(FileNotFoundError) as info:
        load_idx(missing)
    assert "nope-idx1-ubyte" in str(info.value)
    with pytest.raises(TypeError, match="path must be"):
        load_idx(42)


# ----------------------------------------------------------------- load_mnist


def make_mnist_folder(folder, n_train=5, n_test=3, rows=4, cols=3, gz=True, dot=False):
    """Write a tiny MNIST-format folder; returns the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    arrays = {}
    for kind, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, rows, cols), endpoint=False).astype(np.uint8)
        images[0, 0, 0] = 255
        labels = (np.arange(n) % 10).astype(np.uint8)
        sep = "." if dot else "-"
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images{sep}idx3-ubyte{suffix}", images, gz=gz)
        write_idx(folder / f"{prefix}-labels{sep}idx1-ubyte{suffix}", labels, gz=gz)
        arrays[kind] = (images, labels)
    return arrays


@pytest.mark.parametrize("gz, dot", [(True, False), (False, False), (True, True), (False, True)])
@pytest.mark.parametrize("kind", ["train", "test"])
def test_load_mnist_synthetic_folder(tmp_path, gz, dot, kind):
    arrays = make_mnist_folder(tmp_path / "mnist", gz=gz, dot=dot)
    images, labels = arrays[kind]
    ds = load_mnist(tmp_path / "mnist", kind=kind)
    n = images.shape[0]
    assert ds.X.shape == (n, 12) and ds.X.dtype == np.float32
    assert ds.X.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(ds.X, images.reshape(n, 12).astype(np.float32))
    assert ds.X.max() == 255.0  # raw values, not scaled
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, labels)
    assert ds.image_shape == (4, 3)
    assert ds.n_classes == 10
    assert kind in ds.description


def test_load_mnist_default_kind_is_train(tmp_path):
    make_mnist_folder(tmp_path, n_train=7, n_test=2)
    assert load_mnist(str(tmp_path)).X.shape[0] == 7


def test_load_mnist_bad_kind(tmp_path):
    make_mnist_folder(tmp_path)
    for kind in ("valid", "t10k", "", None):
        with pytest.raises(ValueError, match="unknown kind .*; expected one of 'test', 'train'"):
            load_mnist(tmp_path, kind=kind)


def test_load_mnist_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        load_mnist(tmp_path / "absent")
    assert "absent" in str(info.value)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        load_mnist(not_a_folder)


def test_load_mnist_missing_files_lists_names(tmp_path):
    make_mnist_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    load_mnist(tmp_path, "train")  # train files are still there
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path, "test")
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in message
    assert "t10k-labels.idx1-ubyte" in message
    assert "t10k-images" not in message  # the images were found
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz") as info:
        load_mnist(empty, "train")
    assert "train-labels-idx1-ubyte" in str(info.value)


def test_load_mnist_count_mismatch(tmp_path):
    make_mnist_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, dtype=np.uint8), gz=True)
    with pytest.raises(ValueError, match="counts must agree; got 5 images .* 4 labels"):
        load_mnist(tmp_path)


def test_load_mnist_bad_shapes_and_labels(tmp_path):
    make_mnist_folder(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((5, 12), dtype=np.uint8), gz=True)
    with pytest.raises(ValueError, match="3-D array"):
        load_mnist(tmp_path)
    make_mnist_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3, 10], dtype=np.uint8), gz=True)
    with pytest.raises(ValueError, match=r"must be in 0\.\.9"):
        load_mnist(tmp_path)
    make_mnist_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros((5, 1), dtype=np.uint8), gz=True)
    with pytest.raises(ValueError, match="1-D array"):
        load_mnist(tmp_path)
