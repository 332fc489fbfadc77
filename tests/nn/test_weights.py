"""fit(sample_weight=..., class_weight=...): weights enter the loss and its gradient."""
import numpy as np
import pytest

import nn


def _data(n=40, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5)), rng.integers(0, classes, n)


def _model(n_out=3, dtype=np.float32):
    return nn.Sequential([nn.Dense(5, 8, activation="tanh"), nn.Dense(8, n_out)],
                         dtype=dtype, seed=0)


@pytest.mark.parametrize("loss_name", ["softmax", "bce", "mse"])
def test_weighted_losses_pass_the_float64_gradient_check(loss_name):
    X, y = _data(12)
    w = np.random.default_rng(1).random(12) * 3
    if loss_name == "softmax":
        loss, T, n_out = nn.SoftmaxCrossEntropy(), y, 3
    elif loss_name == "bce":
        loss, T, n_out = nn.BinaryCrossEntropy(), (y[:, None] == [0, 1]).astype(float), 2
    else:
        loss, T, n_out = nn.MeanSquaredError(), np.sin(X[:, :2]), 2
    model = _model(n_out, np.float64)
    assert nn.gradient_check(model, X, T, loss=loss, sample_weight=w, l2=0.1) < 1e-7


def test_integer_weights_equal_repeated_rows():
    """Full-batch steps: weight 2 on a row is that row twice, weight 0 is no row."""
    X, y = _data(30)
    w = np.tile([0.0, 1.0, 2.0], 10)
    Xr, yr = np.repeat(X, w.astype(int), axis=0), np.repeat(y, w.astype(int))
    kwargs = dict(loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(0.5), epochs=5,
                  shuffle=False, batch_size=1000)
    weighted, repeated = _model(dtype=np.float64), _model(dtype=np.float64)
    h = weighted.fit(X, y, sample_weight=w, **kwargs)
    repeated.fit(Xr, yr, **kwargs)
    np.testing.assert_allclose(weighted.params, repeated.params, rtol=1e-12, atol=1e-14)
    assert h["loss"][0] > h["loss"][-1]


def test_class_weight_is_the_matching_sample_weight_and_balanced_is_sklearns():
    X, y = _data(50)
    kwargs = dict(loss=nn.SoftmaxCrossEntropy(), epochs=3, batch_size=8)
    by_class = _model()
    by_class.fit(X, y, class_weight={0: 2.0, 2: 0.5}, optimizer=nn.Adam(0.01), **kwargs)
    by_row = _model()
    by_row.fit(X, y, sample_weight=np.array([2.0, 1.0, 0.5])[y], optimizer=nn.Adam(0.01),
               **kwargs)
    np.testing.assert_array_equal(by_class.params, by_row.params)

    counts = np.bincount(y)
    balanced = _model()
    balanced.fit(X, y, class_weight="balanced", optimizer=nn.Adam(0.01), **kwargs)
    by_row = _model()
    by_row.fit(X, y, sample_weight=(len(y) / (3 * counts))[y], optimizer=nn.Adam(0.01),
               **kwargs)
    np.testing.assert_array_equal(balanced.params, by_row.params)


def test_class_weight_with_one_binary_output():
    X, y = _data(40, classes=2)
    kwargs = dict(loss=nn.BinaryCrossEntropy(), epochs=2, batch_size=8)
    a, b = _model(1), _model(1)
    a.fit(X, y, class_weight={1: 3.0}, **kwargs)
    b.fit(X, y, sample_weight=np.where(y == 1, 3.0, 1.0), **kwargs)
    np.testing.assert_array_equal(a.params, b.params)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(sample_weight=-np.ones(40)), ValueError, "sample_weight must be >= 0"),
    (dict(sample_weight=np.ones(39)), ValueError, "sample_weight must have 40 rows"),
    (dict(sample_weight=np.zeros(40)), ValueError, "are all zero"),
    (dict(sample_weight=np.full(40, np.nan)), ValueError, "NaN"),
    (dict(class_weight={3: 1.0}), ValueError, "class_weight key must be <= 2"),
    (dict(class_weight={0: -1.0}), ValueError, r"class_weight\[0\] must be >= 0"),
    (dict(class_weight="even"), ValueError, "unknown class_weight 'even'"),
    (dict(class_weight=[1, 2, 3]), TypeError, "class_weight must be a dict"),
])
def test_bad_weights_are_refused_before_training(kwargs, exc, match):
    X, y = _data(40)
    model = _model()
    before = model.params.copy()
    with pytest.raises(exc, match=match):
        model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=1, **kwargs)
    np.testing.assert_array_equal(model.params, before)


def test_class_weight_needs_a_class_per_row():
    X, _ = _data(20)
    with pytest.raises(ValueError, match="class_weight needs a classification loss"):
        _model(2).fit(X, X[:, :2], loss=nn.MeanSquaredError(), class_weight={0: 2.0})
