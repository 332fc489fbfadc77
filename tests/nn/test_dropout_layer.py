"""nn.Dropout: validation, train/eval behaviour, seeds and step counters, and gradient
checks with the mask held fixed."""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import kernels
import nn


def model_with_dropout(keep_prob=0.5, seed=0, dtype=np.float64):
    return nn.Sequential([nn.Dense(6, 40, activation="tanh"), nn.Dropout(keep_prob),
                          nn.Dense(40, 30, activation="tanh"), nn.Dropout(keep_prob),
                          nn.Dense(30, 3)], dtype=dtype, seed=seed)


def data(n=16, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)), np.arange(n) % 3


@pytest.mark.parametrize("keep_prob", [0, 0.0, -0.2, 1.5, 1.0000001, float("nan"),
                                       float("inf")])
def test_dropout_rejects_keep_prob_outside_0_1(keep_prob):
    with pytest.raises(ValueError, match=r"Dropout: keep_prob must be in \(0, 1\]; got "):
        nn.Dropout(keep_prob)


@pytest.mark.parametrize("keep_prob", ["0.5", None, True])
def test_dropout_rejects_non_numbers(keep_prob):
    with pytest.raises(TypeError, match=r"Dropout: keep_prob must be a real number"):
        nn.Dropout(keep_prob)


def test_dropout_is_identity_in_eval_mode_and_at_keep_prob_one():
    X, y = data()
    model = model_with_dropout(0.5)
    plain = nn.Sequential([nn.Dense(6, 40, activation="tanh"), nn.Dense(40, 30, activation="tanh"),
                           nn.Dense(30, 3)], dtype=np.float64, seed=0)
    assert_array_equal(model.params, plain.params)  # Dropout draws nothing at init
    assert_array_equal(model.forward(X), plain.forward(X))
    model.loss = plain.loss = nn.SoftmaxCrossEntropy()
    assert_array_equal(model.predict(X), plain.predict(X))
    assert model.evaluate(X, y) == plain.evaluate(X, y)
    assert model.layers[1].step == 0  # eval forwards do not count
    ones = model_with_dropout(1.0)
    assert_array_equal(ones.forward(X, training=True), plain.forward(X, training=True))
    assert not np.array_equal(model.forward(X, training=True), plain.forward(X, training=True))


def test_dropout_training_forward_masks_and_scales():
    X = np.ones((200, 6))
    model = nn.Sequential([nn.Dropout(0.25), nn.Dense(6, 2)], dtype=np.float64, seed=3)
    drop = model.layers[0]
    out = drop.forward(X, True)
    assert set(np.unique(out)) <= {0.0, 4.0}
    assert abs((out != 0).mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / X.size)
    mask = np.zeros(X.shape, bool)
    kernels.dropout_forward(X, 0.25, drop.seed, 0, mask, np.empty_like(X))
    assert_array_equal(out != 0, mask)  # the layer's mask is the kernel's at step 0


def test_dropout_step_counts_training_forwards_and_seeds_differ_by_layer():
    X, y = data()
    model = model_with_dropout(0.5)
    d1, d2 = model.layers[1], model.layers[3]
    assert d1.seed != d2.seed and d1.step == d2.step == 0
    a = model.forward(X, training=True)
    b = model.forward(X, training=True)
    assert d1.step == d2.step == 2
    assert not np.array_equal(a, b)  # a new mask per step
    again = model_with_dropout(0.5)
    assert (again.layers[1].seed, again.layers[3].seed) == (d1.seed, d2.seed)
    assert_array_equal(again.forward(X, training=True), a)  # same seed: same bits
    other = model_with_dropout(0.5, seed=1)
    assert other.layers[1].seed != d1.seed
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=3, batch_size=4)
    assert d1.step == 2 + 3 * 4


def test_dropout_state_survives_copy():
    X, _ = data()
    model = model_with_dropout(0.5)
    model.forward(X, training=True)
    clone = model.copy()
    assert clone.layer_states() == model.layer_states() == {
        1: model.layers[1].state(), 3: model.layers[3].state()}
    assert model.layers[1].state()["step"] == 1
    assert_array_equal(clone.forward(X, training=True), model.forward(X, training=True))


def test_dropout_backward_uses_the_forward_mask():
    X, _ = data()
    model = nn.Sequential([nn.Dense(6, 40, activation="tanh"), nn.Dropout(0.5),
                           nn.Dense(40, 3)], dtype=np.float64, seed=0)
    model.forward(X, training=True)
    drop = model.layers[1]
    out, _, mask = drop._cur
    dX, penalty = drop.backward(np.ones_like(out), True, 0.0, 0.0)
    assert penalty == 0.0
    assert_array_equal(dX != 0, mask)
    assert_allclose(dX[mask], 2.0)


@pytest.mark.parametrize("keep_prob", [0.5, 0.8])
def test_dropout_gradient_check_with_fixed_mask(keep_prob):
    X, y = data(n=10)
    model = model_with_dropout(keep_prob)
    model.forward(X, training=True)  # step 1: the check uses the mask at the current step
    err = nn.gradient_check(model, X, y, loss=nn.SoftmaxCrossEntropy(), l2=0.1, l1=0.02)
    assert err < 1e-7
    assert model.layers[1].step == 1  # the check works on a copy


def test_dropout_fit_is_deterministic():
    """Two fits from the same seeds give the same bits with dropout on."""
    X, y = data(n=32)
    runs = []
    for _ in range(2):
        model = model_with_dropout(0.7, dtype=np.float32)
        model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=3, batch_size=8, seed=4)
        runs.append(model.params.tobytes())
    assert runs[0] == runs[1]
