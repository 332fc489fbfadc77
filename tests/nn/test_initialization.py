"""Initializers: their scales, their seeding, and the notes' lessons on initialization
(zeros keep hidden units identical, He breaks the symmetry, large weights saturate tanh,
He keeps the scale of ReLU activations through depth where small weights let it vanish).
"""
import math

import numpy as np
import pytest

import nn
from nn.initializers import INITIALIZERS, initialize

N_IN, N_OUT = 400, 300
SCALES = {
    "zeros": 0.0,
    "small": 0.01,
    "large": 10.0,
    "he": math.sqrt(2 / N_IN),
    "xavier": math.sqrt(1 / N_IN),
    "glorot": math.sqrt(2 / (N_IN + N_OUT)),
}


def test_initializer_names():
    assert set(INITIALIZERS) == set(SCALES)


@pytest.mark.parametrize("name", sorted(SCALES))
def test_initializer_draws_with_the_documented_scale(name):
    layer = nn.Dense(N_IN, N_OUT, init=name)
    nn.Sequential([layer], dtype=np.float64, seed=0)
    W, scale = layer.W, SCALES[name]
    np.testing.assert_array_equal(layer.b, 0.0)  # biases start at zero whatever the init
    if scale == 0.0:
        np.testing.assert_array_equal(W, 0.0)
        return
    # 120000 draws: the sample std is within ~0.4% of the scale, the mean near 0
    assert W.std() == pytest.approx(scale, rel=0.02)
    assert abs(W.mean()) < 0.02 * scale
    # Gaussian, not uniform: about 4.6% of N(0, s) lies beyond 2 s (uniform: 0%)
    assert np.mean(np.abs(W) > 2 * scale) == pytest.approx(0.0455, abs=0.005)


@pytest.mark.parametrize("name", sorted(SCALES))
def test_initialize_fills_out_from_the_generator(name):
    out = np.full((3, 4), np.nan)
    result = initialize(name, 3, 4, np.random.default_rng(5), out)
    assert result is out and np.isfinite(out).all()
    again = initialize(name, 3, 4, np.random.default_rng(5), np.empty((3, 4)))
    np.testing.assert_array_equal(out, again)
    if name != "zeros":
        expected = np.random.default_rng(5).standard_normal((3, 4)) * (
            {"small": 0.01, "large": 10.0, "he": math.sqrt(2 / 3),
             "xavier": math.sqrt(1 / 3), "glorot": math.sqrt(2 / 7)}[name])
        np.testing.assert_allclose(out, expected, rtol=1e-15)


def _model(init, seed, dtype=np.float64):
    return nn.Sequential([nn.Dense(5, 7, init=init, activation="relu"),
                          nn.Dense(7, 3, init=init)], dtype=dtype, seed=seed)


@pytest.mark.parametrize("name", ["small", "large", "he", "xavier", "glorot"])
def test_initialization_is_seeded(name):
    assert _model(name, 3).params.tobytes() == _model(name, 3).params.tobytes()
    assert _model(name, 3).params.tobytes() != _model(name, 4).params.tobytes()
    # layers draw one after the other from the model's generator: they differ
    model = _model(name, 3)
    assert not np.allclose(model.layers[0].W[:3, :3], model.layers[1].W[:3, :3])


@pytest.mark.parametrize("name", ["small", "large", "he", "xavier", "glorot"])
def test_float32_and_float64_models_start_from_the_same_draw(name):
    m32, m64 = _model(name, 1, np.float32), _model(name, 1, np.float64)
    np.testing.assert_array_equal(m32.params, m64.params.astype(np.float32))


# ---------------------------------------------------------------- the lessons


def _symmetry_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)  # 3 classes
    return X, y


def _train(init, hidden="sigmoid"):
    model = nn.Sequential([nn.Dense(4, 6, activation=hidden, init=init),
                           nn.Dense(6, 5, activation=hidden, init=init),
                           nn.Dense(5, 3, init=init)], dtype=np.float64, seed=0)
    X, y = _symmetry_data()
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr=0.5), epochs=20,
              batch_size=10)
    return model


def _column_spread(W):
    """Largest difference between any column and the first (0: all columns equal)."""
    return np.abs(W - W[:, :1]).max()


def test_zero_initialization_keeps_every_hidden_unit_identical():
    model = _train("zeros")
    d0, d1, d2 = model.layers
    # training did move the weights (sigmoid(0) = 0.5, so the gradients are not zero) ...
    for layer in (d0, d1, d2):
        assert np.abs(layer.W).max() > 1e-3
    # ... but every unit of a hidden layer got the same update: equal columns in the
    # layer's W and b, equal rows in the next layer's W
    for layer, nxt in ((d0, d1), (d1, d2)):
        scale = np.abs(layer.W).max()
        assert _column_spread(layer.W) <= 1e-12 * scale
        assert np.ptp(layer.b) <= 1e-12 * np.abs(layer.b).max()
        assert _column_spread(nxt.W.T) <= 1e-12 * np.abs(nxt.W).max()
    # so the hidden activations are identical: the layer acts as a single unit
    X, _ = _symmetry_data()
    A = 1 / (1 + np.exp(-(X @ d0.W + d0.b)))
    assert np.abs(A - A[:, :1]).max() <= 1e-12


def test_zero_initialization_with_tanh_never_moves_the_hidden_weights():
    """tanh(0) = 0: with zero weights the hidden layers get exactly zero gradients and
    only the output bias learns."""
    model = _train("zeros", hidden="tanh")
    for layer in model.layers:
        np.testing.assert_array_equal(layer.W, 0.0)
    np.testing.assert_array_equal(model.layers[0].b, 0.0)
    assert np.abs(model.layers[2].b).max() > 1e-3


@pytest.mark.parametrize("hidden", ["sigmoid", "tanh"])
def test_he_initialization_breaks_the_symmetry(hidden):
    model = _train("he", hidden=hidden)
    d0, d1, d2 = model.layers
    for W in (d0.W, d1.W, d2.W.T):
        # every pair of hidden units differs clearly
        cols = W.T
        gaps = [np.abs(a - b).max() for i, a in enumerate(cols) for b in cols[i + 1:]]
        assert min(gaps) > 0.05 * np.abs(W).max()


def test_large_initialization_saturates_tanh():
    X = np.random.default_rng(0).standard_normal((200, 20))

    def saturated(init):
        model = nn.Sequential([nn.Dense(20, 50, activation="tanh", init=init)],
                              dtype=np.float64, seed=0)
        return np.mean(np.abs(model.forward(X)) > 0.99)
    assert saturated("large") > 0.9  # gradients vanish: tanh' < 0.02 there
    assert saturated("xavier") < 0.05


@pytest.mark.parametrize("init, low, high", [("he", 0.3, 3.0), ("small", 0.0, 1e-6)])
def test_relu_activation_scale_through_depth(init, low, high):
    """He keeps the mean square of ReLU activations of order one through 10 layers;
    0.01 * randn shrinks it by ~1e-3 per layer."""
    width, depth = 100, 10
    layers = [nn.Dense(width, width, activation="relu", init=init) for _ in range(depth)]
    model = nn.Sequential(layers, dtype=np.float64, seed=0)
    X = np.random.default_rng(1).standard_normal((200, width))
    A = model.forward(X)
    ratio = np.mean(A ** 2) / np.mean(np.maximum(X, 0) ** 2)
    assert low <= ratio <= high
