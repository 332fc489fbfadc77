"""nn.BatchNorm: parameters and buffers, train and eval modes, gradient checks with and
without the fused activation, and the one-row-batch and zero-variance cases."""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import nn

PASS = 1e-7


def bn_model(act="tanh", fused=True, dtype=np.float64, momentum=0.9, seed=0):
    """3 -> Dense(5, no bias) -> BatchNorm -> act -> Dense(3). ``fused=False`` puts a
    keep_prob=1 Dropout between BatchNorm and the activation, so nothing is fused."""
    layers = [nn.Dense(3, 5, use_bias=False), nn.BatchNorm(5, momentum=momentum)]
    if not fused:
        layers.append(nn.Dropout(1.0))
    layers += [nn.Activation(act), nn.Dense(5, 3)]
    return nn.Sequential(layers, dtype=dtype, seed=seed)


def data(n=8, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3)), np.arange(n) % 3


def test_batchnorm_parameters_and_buffers_are_views():
    model = bn_model()
    bn = model.layers[1]
    assert_array_equal(bn.gamma, 1.0)
    assert_array_equal(bn.beta, 0.0)
    assert_array_equal(bn.running_mean, 0.0)
    assert_array_equal(bn.running_var, 1.0)
    assert np.shares_memory(bn.gamma, model.params) and np.shares_memory(bn.beta, model.params)
    assert np.shares_memory(bn.running_mean, model.buffers)
    assert np.shares_memory(bn.running_var, model.buffers)
    bn.gamma = np.arange(5.0)
    bn.running_var = np.full(5, 2.0)
    assert_array_equal(bn.gamma, np.arange(5.0))
    assert model.buffers.sum() == 10.0
    with pytest.raises(ValueError, match=r"BatchNorm: gamma must have shape \(5,\); got \(4,\)"):
        bn.gamma = np.ones(4)


def test_batchnorm_fuses_a_following_activation():
    fused, separate = bn_model(fused=True), bn_model(fused=False)
    assert fused.layers[1].act_code == nn.layers.kernels.ACT_TANH and fused.layers[2].fused
    assert separate.layers[1].act_code == 0 and not separate.layers[3].fused
    X, _ = data()
    for training in (True, False):
        assert_allclose(fused.forward(X, training), separate.forward(X, training),
                        rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "separate"])
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "identity"])
def test_batchnorm_gradient_check(act, fused):
    X, y = data()
    err = nn.gradient_check(bn_model(act, fused), X, y, loss=nn.SoftmaxCrossEntropy(),
                            l2=0.2, l1=0.05)
    assert err < PASS


def test_batchnorm_gradient_check_relu_and_planted_bug_fails(monkeypatch):
    X, y = data(seed=3)
    model = bn_model("relu")
    assert nn.gradient_check(model, X, y, loss=nn.SoftmaxCrossEntropy()) < PASS
    # A wrong backward must be caught: dgamma's sign flipped after the kernel.
    bn = model.layers[1]
    right = nn.BatchNorm.backward

    def wrong(self, dA, need_dX, l2, l1):
        out = right(self, dA, need_dX, l2, l1)
        self._grads["gamma"] *= -1
        return out
    monkeypatch.setattr(nn.BatchNorm, "backward", wrong)
    assert nn.gradient_check(model, X, y, loss=nn.SoftmaxCrossEntropy()) > 1e-3
    assert bn.gamma is not None


def test_batchnorm_training_updates_running_statistics():
    X, _ = data(n=16)
    model = bn_model(momentum=0.8)
    bn, dense = model.layers[1], model.layers[0]
    Z = X @ dense.W
    model.forward(X, training=True)
    assert_allclose(bn.running_mean, 0.2 * Z.mean(axis=0), rtol=1e-13)
    assert_allclose(bn.running_var, 0.8 + 0.2 * Z.var(axis=0), rtol=1e-13)  # biased
    model.forward(X, training=False)   # eval mode leaves them alone
    assert_allclose(bn.running_mean, 0.2 * Z.mean(axis=0), rtol=1e-13)


def test_batchnorm_eval_mode_uses_running_statistics():
    X, y = data(n=16)
    model = bn_model(act="identity")
    bn = model.layers[1]
    bn.running_mean = np.linspace(-1, 1, 5)
    bn.running_var = np.linspace(0.5, 2, 5)
    bn.gamma = np.linspace(1, 2, 5)
    bn.beta = np.linspace(-0.5, 0.5, 5)
    Z = X @ model.layers[0].W
    expected = bn.gamma * (Z - bn.running_mean) / np.sqrt(bn.running_var + 1e-5) + bn.beta
    expected = expected @ model.layers[3].W + model.layers[3].b
    assert_allclose(model.forward(X), expected, rtol=1e-12)
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=1, batch_size=8)
    assert_allclose(model.predict(X).sum(axis=1), 1.0)   # predict runs in eval mode too
    # eval output does not depend on the other rows of the batch
    assert_allclose(model.forward(X[:3]), model.forward(X)[:3], rtol=1e-12)


def test_batchnorm_one_row_training_batch_raises():
    model = bn_model()
    X, y = data()
    with pytest.raises(ValueError, match="expected more than 1 value per feature when training"):
        model.forward(X[:1], training=True)
    assert np.isfinite(model.forward(X[:1], training=False)).all()  # eval: fine


@pytest.mark.parametrize("n, batch_size", [(9, 4), (1, 32), (8, 1)])
def test_batchnorm_fit_rejects_a_one_row_batch_up_front(n, batch_size):
    model = bn_model()
    X, y = data(n=n)
    before = model.params.copy()
    with pytest.raises(ValueError, match=r"needs at least 2 rows per batch; "
                                         rf"batch_size={batch_size} with {n} samples"):
        model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=2, batch_size=batch_size)
    assert_array_equal(model.params, before)  # raised before any step


def test_batchnorm_zero_variance_feature_is_finite():
    X, y = data(n=8)
    model = nn.Sequential([nn.BatchNorm(3), nn.Dense(3, 3)], dtype=np.float64, seed=0)
    X[:, 1] = 4.0               # a constant feature: variance 0
    out = model.forward(X, training=True)
    assert np.isfinite(out).all()
    hist = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=3, batch_size=4)
    assert np.isfinite(hist["loss"]).all() and np.isfinite(model.params).all()


def test_batchnorm_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"BatchNorm: momentum must be <= 1.0; got 1.5"):
        nn.BatchNorm(4, momentum=1.5)
    with pytest.raises(ValueError, match=r"BatchNorm: eps must be > 0.0; got 0.0"):
        nn.BatchNorm(4, eps=0.0)
    with pytest.raises(ValueError, match=r"BatchNorm: n must equal the previous layer's width 5"):
        nn.Sequential([nn.Dense(3, 5), nn.BatchNorm(4)])


def test_batchnorm_config_and_copy_round_trip():
    X, y = data(n=16)
    model = bn_model(dtype=np.float32)
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=2, batch_size=8)
    clone = model.copy()
    assert clone.config() == model.config()
    assert_array_equal(clone.layers[1].running_var, model.layers[1].running_var)
    assert_array_equal(clone.predict(X), model.predict(X))


def test_batchnorm_float32_training_learns():
    X, y = data(n=64, seed=5)
    X[np.arange(64), y] += 3.0
    model = bn_model(act="relu", dtype=np.float32)
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr=0.1), epochs=30,
              batch_size=16)
    assert model.evaluate(X, y)["accuracy"] > 0.9


def test_batchnorm_fit_allocates_nothing_per_step(monkeypatch):
    """The layer keeps its work arrays (kernel scratch included) per batch size: after
    the first epoch, 41 steps allocate what 5 steps do. (The kernels themselves allocate
    nothing: tests/kernels/test_batchnorm.py counts Numba's allocations.)"""
    counts = {"n": 0}
    for name in ("empty", "empty_like", "zeros", "zeros_like", "ones", "array", "copy", "full"):
        original = getattr(np, name)

        def counting(*args, _original=original, **kwargs):
            counts["n"] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(np, name, counting)
    model = nn.Sequential([nn.Dense(6, 8, use_bias=False), nn.BatchNorm(8),
                           nn.Activation("relu"), nn.Dense(8, 3)], dtype=np.float32, seed=0)
    rng = np.random.default_rng(0)

    def fit(n_rows):
        X = rng.standard_normal((n_rows, 6)).astype(np.float32)
        y = rng.integers(0, 3, n_rows)
        before = counts["n"]
        model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr=0.01), epochs=1,
                  batch_size=16)
        return counts["n"] - before

    fit(70)                          # warm: work arrays for batches of 16 and 6 rows
    few_steps = fit(70)              # 5 steps
    many_steps = fit(16 * 40 + 6)    # 41 steps, the same two batch sizes
    assert many_steps == few_steps
