"""Tests for nn.data: split, Standardizer and iterate_minibatches."""

import numpy as np
import pytest

from nn.data import Standardizer, epoch_order, iterate_minibatches, split

# ---------------------------------------------------------------------- split


def rows_of(parts):
    return [len(y) for _, y in parts]


def test_split_default_sizes_and_partition():
    X = np.arange(20).reshape(10, 2)
    y = np.arange(10) * 3
    parts = split(X, y)
    assert len(parts) == 3
    assert rows_of(parts) == [6, 2, 2]
    rows = np.concatenate([Xp[:, 0] // 2 for Xp, _ in parts])
    assert sorted(rows.tolist()) == list(range(10))  # every row exactly once
    for Xp, yp in parts:  # X and y rows stay paired
        np.testing.assert_array_equal(yp, (Xp[:, 0] // 2) * 3)
    assert rows.tolist() != list(range(10))  # rows are shuffled


def test_split_98_1_1_of_10000():
    X = np.zeros((10000, 1), dtype=np.float32)
    y = np.zeros(10000, dtype=np.int64)
    assert rows_of(split(X, y, (0.98, 0.01, 0.01))) == [9800, 100, 100]


def test_split_two_parts():
    parts = split(np.arange(7), np.arange(7), ratios=(0.7, 0.3))
    assert len(parts) == 2
    assert rows_of(parts) == [5, 2]


@pytest.mark.parametrize(
    "n, ratios, sizes",
    [
        (10, (0.42, 0.37, 0.21), [4, 4, 2]),  # quotas 4.2, 3.7, 2.1
        (7, (0.5, 0.25, 0.25), [3, 2, 2]),  # quotas 3.5, 1.75, 1.75
        (10, (0.35, 0.65), [4, 6]),  # tie 0.5/0.5 goes to the earlier part
        (3, (1 / 3, 1 / 3, 1 / 3), [1, 1, 1]),
    ],
)
def test_split_largest_remainder_exact(n, ratios, sizes):
    assert rows_of(split(np.zeros(n), np.zeros(n), ratios)) == sizes


@pytest.mark.parametrize("n", [3, 7, 10, 11, 99, 1001])
@pytest.mark.parametrize("ratios", [(0.6, 0.2, 0.2), (1 / 3, 1 / 3, 1 / 3), (0.5, 0.5), (0.8, 0.15, 0.05)])
def test_split_sizes_are_largest_remainder(n, ratios):
    try:
        parts = split(np.zeros(n), np.zeros(n), ratios)
    except ValueError as exc:
        assert "empty" in str(exc)
        assert any(np.floor(n * r) == 0 for r in ratios)
        return
    sizes = np.array(rows_of(parts))
    assert sizes.sum() == n
    quotas = n * np.array(ratios)
    assert (sizes >= np.floor(quotas)).all() and (sizes <= np.ceil(quotas)).all()


def test_split_keeps_dtypes_and_copies():
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = np.arange(20, dtype=np.int8)
    for Xp, yp in split(X, y):
        assert isinstance(Xp, np.ndarray) and Xp.dtype == np.float32
        assert yp.dtype == np.int8
        assert not np.shares_memory(Xp, X) and not np.shares_memory(yp, y)
    # Lists are accepted and come back as arrays.
    (Xa, ya), (Xb, yb) = split([[1, 2], [3, 4], [5, 6]], ["a", "b", "c"], (0.6, 0.4))
    assert isinstance(Xa, np.ndarray) and isinstance(yb, np.ndarray)


def test_split_one_dimensional_x_and_two_dimensional_y():
    X = np.arange(10.0)
    Y = np.eye(10)  # e.g. one-hot targets
    (X1, Y1), (X2, Y2) = split(X, Y, (0.5, 0.5), seed=4)
    assert X1.shape == (5,) and Y1.shape == (5, 10)
    np.testing.assert_array_equal(Y1.argmax(axis=1), X1.astype(int))


def test_split_seed_reproducible_and_varies():
    X = np.arange(100)
    y = np.arange(100) % 3
    for stratify in (False, True):
        a = split(X, y, stratify=stratify, seed=5)
        b = split(X, y, stratify=stratify, seed=5)
        c = split(X, y, stratify=stratify, seed=6)
        for (Xa, ya), (Xb, yb) in zip(a, b):
            np.testing.assert_array_equal(Xa, Xb)
            np.testing.assert_array_equal(ya, yb)
        assert not np.array_equal(a[0][0], c[0][0])


def assert_stratified(parts, y, ratios):
    n = len(y)
    labels, counts = np.unique(y, return_counts=True)
    unstratified = rows_of(split(np.zeros(n), np.zeros(n), ratios))
    assert rows_of(parts) == unstratified
    total = np.zeros(len(labels), dtype=int)
    for _, yp in parts:
        part_counts = np.array([(yp == c).sum() for c in labels])
        expected = len(yp) * counts / n
        assert (np.abs(part_counts - expected) < 1).all(), (part_counts, expected)
        total += part_counts
    np.testing.assert_array_equal(total, counts)


def test_split_stratified_imbalanced():
    y = np.array([0] * 900 + [1] * 100)
    X = np.arange(1000)
    parts = split(X, y, (0.6, 0.2, 0.2), stratify=True, seed=3)
    assert [np.bincount(yp, minlength=2).tolist() for _, yp in parts] == [[540, 60], [180, 20], [180, 20]]
    assert_stratified(parts, y, (0.6, 0.2, 0.2))
    for Xp, yp in parts:
        np.testing.assert_array_equal(yp, (Xp >= 900).astype(int))
    rows = np.concatenate([Xp for Xp, _ in parts])
    assert sorted(rows.tolist()) == list(range(1000))
    # Parts are shuffled, not grouped by class.
    assert not np.all(np.diff(parts[0][1]) >= 0)


def test_split_stratified_98_1_1_and_string_labels():
    rng = np.random.default_rng(0)
    y = rng.choice(np.array(["cat", "dog", "eel", "fox"]), size=10000, p=[0.7, 0.2, 0.07, 0.03])
    parts = split(np.arange(10000), y, (0.98, 0.01, 0.01), stratify=True)
    assert rows_of(parts) == [9800, 100, 100]
    assert_stratified(parts, y, (0.98, 0.01, 0.01))


def test_split_stratified_needs_rebalancing():
    # Every class-part quota is 2/3: simple per-entry rounding cannot meet both
    # the class counts and the part sizes.
    y = np.array([0, 0, 1, 1, 2, 2])
    parts = split(np.arange(6), y, (0.25, 0.375, 0.375), stratify=True)
    assert rows_of(parts) == [2, 2, 2]
    for _, yp in parts:
        assert len(set(yp.tolist())) == 2
    assert_stratified(parts, y, (0.25, 0.375, 0.375))


def test_split_stratified_random_label_sets():
    rng = np.random.default_rng(42)
    for trial in range(150):
        n_classes = int(rng.integers(1, 12))
        counts = rng.integers(1, 40, size=n_classes)
        y = np.repeat(np.arange(n_classes), counts)
        n = len(y)
        k = int(rng.integers(2, 4))
        raw = rng.random(k) + 0.05
        ratios = tuple(raw / raw.sum())
        if any(np.floor(n * r) == 0 for r in ratios):
            continue
        parts = split(np.arange(n), y, ratios, stratify=True, seed=trial)
        assert_stratified(parts, y, ratios)


def test_split_empty_part_error():
    X = np.zeros((10, 2))
    y = np.zeros(10)
    with pytest.raises(ValueError, match=r"empty dev part for n=10 rows with ratios \(0\.98, 0\.01, 0\.01\)"):
        split(X, y, (0.98, 0.01, 0.01))
    with pytest.raises(ValueError, match="empty test part"):
        split(X, y, (0.5, 0.46, 0.04))


@pytest.mark.parametrize(
    "ratios, match",
    [
        ((0.6, 0.3, 0.2), r"ratios must sum to 1; got \(0\.6, 0\.3, 0\.2\) summing to 1\.1"),
        ((1.0,), "2 or 3 numbers"),
        ((0.25, 0.25, 0.25, 0.25), "2 or 3 numbers"),
        ((1.2, -0.2), r"ratios\[1\] must be > 0; got -0\.2"),
        ((1.0, 0.0), r"ratios\[1\] must be > 0; got 0\.0"),
        ((0.5, float("nan")), r"ratios\[1\] must be finite; got nan"),
        (("0.5", "0.5"), "2 or 3 numbers"),
    ],
)
def test_split_bad_ratios(ratios, match):
    with pytest.raises(ValueError, match=match):
        split(np.zeros(10), np.zeros(10), ratios)


def test_split_ratio_tolerance():
    split(np.zeros(10), np.zeros(10), (0.5, 0.5 + 5e-10))
    with pytest.raises(ValueError, match="sum to 1"):
        split(np.zeros(10), np.zeros(10), (0.5, 0.5 + 1e-8))


def test_split_input_errors():
    with pytest.raises(ValueError, match=r"same number of rows; got X with shape \(10, 2\) and y with shape \(9,\)"):
        split(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match="at least one row"):
        split(np.zeros((0, 3)), np.zeros(0))
    with pytest.raises(ValueError, match="at least one row"):
        split(np.float64(1.0), np.zeros(1))
    with pytest.raises(ValueError, match="y must be 1-D class labels"):
        split(np.zeros(10), np.eye(10), stratify=True)
    with pytest.raises(TypeError, match="seed must be an integer; got 1.5"):
        split(np.zeros(10), np.zeros(10), seed=1.5)
    with pytest.raises(ValueError, match="seed must be >= 0; got -1"):
        split(np.zeros(10), np.zeros(10), seed=-1)
    with pytest.raises(TypeError, match="stratify must be True or False"):
        split(np.zeros(10), np.zeros(10), stratify="yes")


# --------------------------------------------------------------- Standardizer


def make_features(dtype=np.float64, n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(loc=[0.0, 10.0, -3.0, 1000.0], scale=[1.0, 0.1, 5.0, 20.0], size=(n, 4))
    return X.astype(dtype)


def test_standardizer_round_trip_and_statistics():
    X = make_features()
    s = Standardizer()
    assert s.fit(X) is s
    assert s.mean_.dtype == np.float64 and s.scale_.dtype == np.float64
    assert s.n_features_ == 4
    np.testing.assert_allclose(s.mean_, X.mean(axis=0))
    np.testing.assert_allclose(s.scale_, X.std(axis=0, ddof=0))
    Z = s.transform(X)
    assert Z.dtype == np.float64 and Z.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z.std(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(s.inverse_transform(Z), X, rtol=1e-12)
    np.testing.assert_array_equal(Standardizer().fit_transform(X), Z)
    # Transforming new data uses the fitted statistics.
    np.testing.assert_allclose(s.transform(X[:3] + 1.0), (X[:3] + 1.0 - s.mean_) / s.scale_)


def test_standardizer_constant_features():
    X = make_features()
    X[:, 1] = 5.0  # exactly constant
    X[:, 2] = 1e6 + np.where(np.arange(len(X)) % 2 == 0, 0.0, 2.0**-32)  # std ~1e-10 < 1e-12 * 1e6
    s = Standardizer().fit(X)
    assert s.scale_[1] == 1.0 and s.scale_[2] == 1.0
    assert s.scale_[0] != 1.0
    Z = s.transform(X)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z[:, 1], 0.0)
    np.testing.assert_allclose(Z[:, 2], 0.0, atol=1e-9)
    np.testing.assert_allclose(s.inverse_transform(Z), X, rtol=1e-12)
    # One sample: every feature is constant.
    one = Standardizer().fit(X[:1])
    np.testing.assert_array_equal(one.scale_, 1.0)
    np.testing.assert_array_equal(one.transform(X[:1]), 0.0)


def test_standardizer_dtypes():
    X32 = make_features(np.float32)
    s = Standardizer().fit(X32)
    assert s.mean_.dtype == np.float64
    Z = s.transform(X32)
    assert Z.dtype == np.float32
    assert s.inverse_transform(Z).dtype == np.float32
    np.testing.assert_allclose(s.inverse_transform(Z), X32, rtol=1e-5)
    # Statistics of float32 data are computed in float64.
    np.testing.assert_allclose(s.mean_, X32.astype(np.float64).mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(s.scale_, X32.astype(np.float64).std(axis=0), rtol=1e-12)
    Xint = np.array([[1, 10], [3, 10], [5, 10]], dtype=np.int64)
    Zint = Standardizer().fit_transform(Xint)
    assert Zint.dtype == np.float32
    np.testing.assert_allclose(Zint[:, 0], [-np.sqrt(1.5), 0.0, np.sqrt(1.5)], rtol=1e-6)
    np.testing.assert_array_equal(Zint[:, 1], 0.0)
    # Fortran-ordered input gives C-ordered output.
    assert s.transform(np.asfortranarray(X32)).flags["C_CONTIGUOUS"]


def test_standardizer_errors():
    s = Standardizer()
    with pytest.raises(RuntimeError, match="Standardizer.transform: call fit first"):
        s.transform(np.zeros((2, 2)))
    with pytest.raises(RuntimeError, match="call fit first"):
        s.inverse_transform(np.zeros((2, 2)))
    with pytest.raises(RuntimeError, match="call fit first"):
        s.get_state()
    s.fit(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"X must have 3 columns \(features\); got shape \(2, 2\)"):
        s.transform(np.zeros((2, 2)))
    bad = np.ones((4, 3))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="Standardizer.fit: X contains NaN or infinite values"):
        Standardizer().fit(bad)
    bad[1, 2] = np.inf
    with pytest.raises(ValueError, match="X contains NaN or infinite values"):
        s.transform(bad)
    with pytest.raises(ValueError, match=r"X must be 2-D; got shape \(5,\)"):
        Standardizer().fit(np.zeros(5))
    with pytest.raises(ValueError, match=r"X is empty; got shape \(0, 3\)"):
        Standardizer().fit(np.zeros((0, 3)))
    with pytest.raises(TypeError, match="X must be numeric; got dtype <U1"):
        Standardizer().fit(np.array([["a"]]))
    with pytest.raises(TypeError, match="X must be real; got dtype complex128"):
        Standardizer().fit(np.ones((2, 2), dtype=complex))


def test_standardizer_state_round_trip():
    X = make_features(np.float32)
    s = Standardizer().fit(X)
    state = s.get_state()
    assert set(state) == {"mean", "scale"}
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in state.values())
    state["mean"][0] += 1.0  # a copy: does not change s
    assert s.mean_[0] != state["mean"][0]
    t = Standardizer.from_state(s.get_state())
    assert t.n_features_ == 4
    np.testing.assert_array_equal(t.transform(X), s.transform(X))
    assert "not fitted" in repr(Standardizer()) and "n_features=4" in repr(t)


@pytest.mark.parametrize(
    "state, error, match",
    [
        ({"mean": np.zeros(2)}, ValueError, 'keys "mean" and "scale"'),
        ({"mean": np.zeros(2), "scale": np.ones(3)}, ValueError, "same length"),
        ({"mean": np.zeros(2), "scale": np.array([1.0, 0.0])}, ValueError, "positive"),
        ({"mean": np.zeros((2, 1)), "scale": np.ones(2)}, ValueError, r'state\["mean"\] must be 1-D'),
        ({"mean": np.array([np.nan, 0]), "scale": np.ones(2)}, ValueError, "NaN or infinite"),
        ([1, 2], TypeError, "must be a dict"),
    ],
)
def test_standardizer_from_state_errors(state, error, match):
    with pytest.raises(error, match=match):
        Standardizer.from_state(state)


# -------------------------------------------------------- iterate_minibatches


def test_minibatches_cover_every_index_once_and_keep_partial_batch():
    batches = list(iterate_minibatches(103, 10, seed=1))
    assert [len(b) for b in batches] == [10] * 10 + [3]
    assert all(b.dtype == np.int64 for b in batches)
    allidx = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(allidx), np.arange(103))
    assert not np.array_equal(allidx, np.arange(103))  # shuffled


def test_minibatches_in_order_without_shuffle():
    batches = list(iterate_minibatches(7, 3, shuffle=False))
    assert [b.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]


@pytest.mark.parametrize("batch_size", [50, 51, 1000])
def test_minibatches_full_batch(batch_size):
    batches = list(iterate_minibatches(50, batch_size, shuffle=False))
    assert len(batches) == 1
    np.testing.assert_array_equal(batches[0], np.arange(50))
    shuffled = list(iterate_minibatches(50, batch_size, seed=2))
    assert len(shuffled) == 1 and sorted(shuffled[0].tolist()) == list(range(50))


def test_minibatches_reproducible_from_seed_and_epoch():
    def order(seed, epoch):
        return np.concatenate(list(iterate_minibatches(64, 16, seed=seed, epoch=epoch)))

    np.testing.assert_array_equal(order(7, 3), order(7, 3))
    np.testing.assert_array_equal(
        order(7, 3), np.random.default_rng([7, 3]).permutation(64)
    )
    assert not np.array_equal(order(7, 3), order(7, 4))  # differs between epochs
    assert not np.array_equal(order(7, 3), order(8, 3))  # and between seeds


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(batch_size=0), ValueError, "batch_size must be >= 1; got 0"),
        (dict(batch_size=-3), ValueError, "batch_size must be >= 1"),
        (dict(batch_size=2.0), TypeError, "batch_size must be an integer; got 2.0"),
        (dict(batch_size=True), TypeError, "batch_size must be an integer"),
        (dict(n_samples=0), ValueError, "iterate_minibatches: n_samples must be >= 1"),
        (dict(epoch=-1), ValueError, "iterate_minibatches: epoch must be >= 0"),
        (dict(shuffle=1), TypeError, "iterate_minibatches: shuffle must be True or False"),
    ],
)
def test_minibatches_validation_is_eager(kwargs, error, match):
    args = dict(n_samples=10, batch_size=4)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        iterate_minibatches(**args)  # raises at call time, before iterating


@pytest.mark.parametrize("n, seed, epoch", [(1, 0, 0), (64, 7, 3), (1000, 0, 5), (50, 2**40, 0)])
def test_epoch_order_is_the_seeded_permutation(n, seed, epoch):
    order = epoch_order(n, True, seed, epoch)
    assert order.dtype == np.int64
    np.testing.assert_array_equal(order, np.random.default_rng([seed, epoch]).permutation(n))
    unshuffled = epoch_order(n, False, seed, epoch)
    assert unshuffled.dtype == np.int64
    np.testing.assert_array_equal(unshuffled, np.arange(n))
    # iterate_minibatches visits the rows in exactly this order.
    batches = iterate_minibatches(n, 16, shuffle=True, seed=seed, epoch=epoch)
    np.testing.assert_array_equal(np.concatenate(list(batches)), order)


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((0, True, 0, 0), ValueError, "epoch_order: n_samples must be >= 1; got 0"),
        ((5, 1, 0, 0), TypeError, "epoch_order: shuffle must be True or False; got 1"),
        ((5, True, -1, 0), ValueError, "epoch_order: seed must be >= 0; got -1"),
        ((5, True, 0, 1.0), TypeError, "epoch_order: epoch must be an integer; got 1.0"),
    ],
)
def test_epoch_order_validation(args, error, match):
    with pytest.raises(error, match=match):
        epoch_order(*args)


def test_minibatches_accept_numpy_ints():
    batches = list(iterate_minibatches(np.int64(5), np.int32(2), shuffle=False))
    assert [len(b) for b in batches] == [2, 2, 1]
