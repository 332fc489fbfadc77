"""nn.gradient_check: backprop against two-sided differences, in float64.

Every activation (fused in Dense and as its own Activation layer), Dense with and
without bias, every loss, and the L2 and L1 penalties must pass below 1e-7; a planted
wrong gradient must fail. ReLU and leaky ReLU have a kink at 0 and L1 one at W = 0:
the data and seeds keep every pre-activation and weight well away from them, and the
tests assert that before checking.
"""
import numpy as np
import pytest

import nn

ACTIVATIONS = ["identity", "relu", "leaky_relu", "tanh", "sigmoid"]
PASS = 1e-7
KINK_MARGIN = 1e-4


def build(activation, separate, use_bias=True, n_out=3, dtype=np.float64, seed=0):
    """3 -> 5 -> 4 -> n_out, hidden activation fused or as an Activation layer."""
    def hidden(n_in, width):
        if separate:
            return [nn.Dense(n_in, width, use_bias=use_bias), nn.Activation(activation)]
        return [nn.Dense(n_in, width, activation=activation, use_bias=use_bias)]
    layers = hidden(3, 5) + hidden(5, 4) + [nn.Dense(4, n_out, use_bias=use_bias)]
    return nn.Sequential(layers, dtype=dtype, seed=seed)


def data(n=8, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    y = np.arange(n) % 3
    return X, y


_NP_ACT = {
    "relu": lambda z: np.maximum(z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
}


def _np_act(name, z):
    return _NP_ACT.get(name, lambda v: v)(z)


def preactivations(model, X):
    """Every input to an activation function (a Dense layer's Z when it has one fused,
    an Activation layer's input), computed in float64 NumPy from the model's weights."""
    A, found = np.asarray(X, np.float64), []
    for layer in model.layers:
        if isinstance(layer, nn.Dense):
            Z = A @ layer.W.astype(np.float64)
            if layer.use_bias:
                Z = Z + layer.b
            if layer.activation not in ("identity", "linear"):
                found.append(Z)
            A = _np_act(layer.activation, Z)
        else:
            found.append(A)
            A = _np_act(layer.name, A)
    return found


def assert_away_from_kinks(model, X, weights=False):
    for Z in preactivations(model, X):
        assert np.abs(Z).min() > KINK_MARGIN, "a pre-activation sits at a kink"
    if weights:
        for layer in model.layers:
            if isinstance(layer, nn.Dense):
                assert np.abs(layer.W).min() > KINK_MARGIN, "a weight sits at the L1 kink"


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("separate", [False, True], ids=["fused", "Activation"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradient_check_every_activation_and_bias_passes(activation, separate, use_bias):
    model = build(activation, separate, use_bias)
    X, y = data()
    assert_away_from_kinks(model, X)
    error = nn.gradient_check(model, X, y, loss=nn.SoftmaxCrossEntropy())
    assert 0.0 < error < PASS  # 0.0 would mean nothing was compared


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradient_check_with_nonzero_biases_passes(activation):
    # biases start at zero; move them so the bias gradient path is exercised off zero
    model = build(activation, separate=False)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        layer.b[...] = 0.1 * rng.standard_normal(layer.b.shape)
    X, y = data()
    assert_away_from_kinks(model, X)
    assert nn.gradient_check(model, X, y, loss=nn.SoftmaxCrossEntropy()) < PASS


def _targets(loss_name, X, y):
    if loss_name == "softmax":
        return nn.SoftmaxCrossEntropy(), 3, y
    if loss_name == "bce_hard":
        return nn.BinaryCrossEntropy(), 1, (y == 1).astype(float)
    if loss_name == "bce_soft":  # probabilities as targets, several outputs
        return nn.BinaryCrossEntropy(), 3, np.linspace(0.05, 0.95, X.shape[0] * 3).reshape(-1, 3)
    if loss_name == "mse_1":
        return nn.MeanSquaredError(), 1, X[:, 0] - 2 * X[:, 1]
    return nn.MeanSquaredError(), 3, np.sin(X)  # mse with three outputs


LOSSES = ["softmax", "bce_hard", "bce_soft", "mse_1", "mse_3"]


@pytest.mark.parametrize("loss_name", LOSSES)
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_gradient_check_every_loss_passes(loss_name, activation):
    X, y = data(n=10, seed=2)
    loss, n_out, T = _targets(loss_name, X, y)
    model = build(activation, separate=False, n_out=n_out, seed=1)
    assert_away_from_kinks(model, X)
    assert 0.0 < nn.gradient_check(model, X, T, loss=loss) < PASS


def test_gradient_check_one_hot_labels_pass():
    X, y = data()
    model = build("tanh", separate=False)
    assert nn.gradient_check(model, X, np.eye(3)[y], loss=nn.SoftmaxCrossEntropy()) < PASS


@pytest.mark.parametrize("l2, l1", [(0.5, 0.0), (0.0, 0.3), (0.7, 0.2)],
                         ids=["l2", "l1", "l2+l1"])
@pytest.mark.parametrize("loss_name", ["softmax", "bce_hard", "mse_3"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_gradient_check_with_penalties_passes(l2, l1, loss_name, activation):
    X, y = data(n=8, seed=3)
    loss, n_out, T = _targets(loss_name, X, y)
    model = build(activation, separate=False, n_out=n_out, seed=0)  # He init: W off 0
    assert_away_from_kinks(model, X, weights=l1 > 0)
    assert nn.gradient_check(model, X, T, loss=loss, l2=l2, l1=l1) < PASS


def test_gradient_check_uses_two_sided_differences():
    """The error of two-sided differences shrinks like eps**2 (one-sided: like eps)."""
    X, y = data()
    model = build("tanh", separate=False)
    loss = nn.SoftmaxCrossEntropy()
    coarse = nn.gradient_check(model, X, y, loss=loss, eps=1e-2)
    fine = nn.gradient_check(model, X, y, loss=loss, eps=1e-3)
    assert 50 < coarse / fine < 200
    assert fine < 1e-6  # one-sided differences give ~3e-4 here


def test_gradient_check_float32_model_is_checked_in_float64_and_left_unchanged():
    X, y = data()
    model = build("tanh", separate=False, dtype=np.float32)
    before = model.params.tobytes()
    error = nn.gradient_check(model, X, y, loss=nn.SoftmaxCrossEntropy())
    assert 0.0 < error < PASS  # float32 differences could not get below ~1e-3
    assert model.dtype == np.float32
    assert model.params.tobytes() == before


def test_gradient_check_leaves_a_float64_model_unchanged():
    X, y = data()
    model = build("relu", separate=True)
    before = model.params.copy()
    nn.gradient_check(model, X, y, loss=nn.SoftmaxCrossEntropy(), l2=0.1)
    np.testing.assert_array_equal(model.params, before)


def test_gradient_check_returns_a_float():
    X, y = data()
    error = nn.gradient_check(build("tanh", False), X, y, loss=nn.SoftmaxCrossEntropy())
    assert type(error) is float
    with pytest.raises(TypeError, match=r"got the class nn.SoftmaxCrossEntropy itself. "
                                        r"Call it: loss=nn.SoftmaxCrossEntropy\(\)"):
        nn.gradient_check(build("tanh", False), X, y, loss=nn.SoftmaxCrossEntropy)


# ---------------------------------------------------------------- planted bugs


def _scale_dW(factor):
    real = nn.Dense.backward

    def backward(self, dA, need_dX, l2, l1):
        dX, penalty = real(self, dA, need_dX, l2, l1)
        self._grads["W"] *= factor
        return dX, penalty
    return backward


def _scale_db(factor):
    real = nn.Dense.backward

    def backward(self, dA, need_dX, l2, l1):
        dX, penalty = real(self, dA, need_dX, l2, l1)
        self._grads["b"] *= factor
        return dX, penalty
    return backward


def _scale_dX(factor):
    real = nn.Dense.backward

    def backward(self, dA, need_dX, l2, l1):
        dX, penalty = real(self, dA, need_dX, l2, l1)
        if dX is not None:
            dX *= factor
        return dX, penalty
    return backward


def _drop_l2(self, dA, need_dX, l2, l1, _real=nn.Dense.backward):
    return _real(self, dA, need_dX, 0.0, l1)


def _scale_activation_dX(factor):
    real = nn.Activation.backward

    def backward(self, dA, need_dX, l2, l1):
        dX, penalty = real(self, dA, need_dX, l2, l1)
        return dX * factor, penalty
    return backward


@pytest.mark.parametrize("plant, separate, l2", [
    (("Dense", _scale_dW(1.01)), False, 0.0),
    (("Dense", _scale_db(1.01)), False, 0.0),
    (("Dense", _scale_dX(1.01)), False, 0.0),
    (("Dense", _drop_l2), False, 0.5),
    (("Activation", _scale_activation_dX(1.01)), True, 0.0),
], ids=["dW*1.01", "db*1.01", "dX*1.01", "l2 dropped", "Activation dX*1.01"])
def test_gradient_check_fails_on_a_planted_wrong_gradient(monkeypatch, plant, separate, l2):
    X, y = data()
    model = build("tanh", separate=separate)
    model.layers[0].b[...] = 0.1  # nonzero biases, so db matters
    loss = nn.SoftmaxCrossEntropy()
    assert_away_from_kinks(model, X)
    assert nn.gradient_check(model, X, y, loss=loss, l2=l2) < PASS
    cls, method = plant
    # patch the class: gradient_check works on a float64 copy with new layer objects
    monkeypatch.setattr(getattr(nn, cls), "backward", method)
    assert nn.gradient_check(model, X, y, loss=loss, l2=l2) > 1e-5


def test_gradient_check_fails_on_a_planted_wrong_loss_gradient(monkeypatch):
    X, y = data()
    model = build("relu", separate=False)
    loss = nn.MeanSquaredError()
    T = np.sin(X)
    assert_away_from_kinks(model, X)
    assert nn.gradient_check(model, X, T, loss=loss) < PASS
    real = nn.MeanSquaredError.loss_and_grad

    def wrong(self, out, T, dout, row_loss, weights=None):
        value = real(self, out, T, dout, row_loss, weights)
        dout *= 1.01
        return value
    monkeypatch.setattr(nn.MeanSquaredError, "loss_and_grad", wrong)
    # every backprop gradient is now 1.01 times the true one, so the relative error
    # ||g_num - g|| / (||g_num|| + ||g||) is 0.01 / 2.01
    assert nn.gradient_check(model, X, T, loss=loss) == pytest.approx(0.01 / 2.01, rel=1e-5)
