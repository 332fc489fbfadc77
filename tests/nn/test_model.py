"""Sequential, Dense and Activation: flat buffers, views, passes, predict and evaluate."""
import numpy as np
import pytest

import nn

ACTIVATIONS = ["identity", "relu", "leaky_relu", "tanh", "sigmoid"]


def np_act(name, z):
    """NumPy reference of the activations."""
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, 0.01 * z)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    return z


def np_softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def two_layer(dtype=np.float64, seed=0, hidden="tanh", n_in=3, n_hidden=5, n_out=3):
    return nn.Sequential([nn.Dense(n_in, n_hidden, activation=hidden),
                          nn.Dense(n_hidden, n_out)], dtype=dtype, seed=seed)


# ---------------------------------------------------------------- structure


def test_dense_shapes_and_defaults():
    layer = nn.Dense(4, 3)
    model = nn.Sequential([layer], seed=0)
    assert layer.W.shape == (4, 3) and layer.b.shape == (3,)
    assert layer.activation == "identity" and layer.init == "he" and layer.use_bias
    assert model.dtype == np.float32 and layer.W.dtype == np.float32
    assert model.n_features == 4 and model.n_outputs == 3
    np.testing.assert_array_equal(layer.b, 0.0)  # biases start at zero
    assert "Dense(n_in=4, n_out=3" in repr(model)


def test_sequential_keeps_the_given_layer_objects_in_order():
    layers = [nn.Dense(3, 5, activation="relu"), nn.Activation("tanh"), nn.Dense(5, 2)]
    model = nn.Sequential(layers, seed=0)
    assert isinstance(model.layers, list)
    assert len(model.layers) == 3
    assert all(a is b for a, b in zip(model.layers, layers))
    assert model.n_features == 3 and model.n_outputs == 2
    assert model.optimizer is None and model.loss is None


def test_flat_params_layout_is_W_then_b_per_layer_in_order():
    model = nn.Sequential([nn.Dense(3, 4, activation="relu"), nn.Activation("tanh"),
                           nn.Dense(4, 2, use_bias=False), nn.Dense(2, 5)],
                          dtype=np.float64, seed=0)
    d0, _, d2, d3 = model.layers
    sizes = 3 * 4 + 4 + 4 * 2 + 2 * 5 + 5
    assert model.params.shape == (sizes,) and model.grads.shape == (sizes,)
    assert model.params.dtype == model.grads.dtype == np.float64
    expected = np.concatenate([d0.W.ravel(), d0.b, d2.W.ravel(), d3.W.ravel(), d3.b])
    np.testing.assert_array_equal(model.params, expected)
    # each view sits at its offset of the flat buffer (same memory, not a copy)
    offsets = [(d0.W, 0), (d0.b, 12), (d2.W, 16), (d3.W, 24), (d3.b, 34)]
    base = model.params.__array_interface__["data"][0]
    for view, offset in offsets:
        assert np.shares_memory(view, model.params)
        assert view.__array_interface__["data"][0] == base + offset * 8
    gbase = model.grads.__array_interface__["data"][0]
    for view, offset in [(d0.dW, 0), (d0.db, 12), (d2.dW, 16), (d3.dW, 24), (d3.db, 34)]:
        assert np.shares_memory(view, model.grads)
        assert view.__array_interface__["data"][0] == gbase + offset * 8
    assert not np.shares_memory(model.params, model.grads)


def test_dense_without_bias_has_empty_b_and_no_bias_in_params():
    layer = nn.Dense(3, 4, use_bias=False)
    model = nn.Sequential([layer], seed=0)
    assert layer.b.shape == (0,)
    assert model.params.size == 12
    X = np.random.default_rng(1).standard_normal((5, 3))
    np.testing.assert_allclose(model.forward(X), X @ layer.W.astype(np.float64), rtol=1e-6)


def test_layer_W_and_b_are_writable_views_into_params():
    model = two_layer()
    d0, d1 = model.layers
    d0.W[...] = 7.0
    np.testing.assert_array_equal(model.params[:15], 7.0)
    d1.b[1] = -3.5
    assert model.params[15 + 5 + 15 + 1] == -3.5
    # and the other way: writing the flat buffer changes the layers
    model.params[:] = np.arange(model.params.size)
    np.testing.assert_array_equal(d0.W, np.arange(15).reshape(3, 5))
    np.testing.assert_array_equal(d0.b, np.arange(15, 20))
    # assigning the attribute copies into the view (the view stays bound)
    d1.W = np.full((5, 3), 2.0)
    np.testing.assert_array_equal(model.params[20:35], 2.0)
    assert np.shares_memory(d1.W, model.params)


def test_assigning_W_changes_forward():
    model = nn.Sequential([nn.Dense(2, 1)], dtype=np.float64, seed=0)
    model.layers[0].W[...] = [[1.0], [2.0]]
    model.layers[0].b[...] = 0.5
    np.testing.assert_array_equal(model.forward(np.array([[1.0, 1.0], [2.0, -1.0]])),
                                  [[3.5], [0.5]])


# ---------------------------------------------------------------- forward


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_numpy_fused_and_separate_activation(activation, dtype):
    X = np.random.default_rng(2).standard_normal((7, 3))
    fused = nn.Sequential([nn.Dense(3, 4, activation=activation), nn.Dense(4, 2)],
                          dtype=dtype, seed=3)
    separate = nn.Sequential([nn.Dense(3, 4), nn.Activation(activation), nn.Dense(4, 2)],
                             dtype=dtype, seed=3)
    np.testing.assert_array_equal(fused.params, separate.params)  # same seed, same draws
    d0, d1 = fused.layers
    W0, b0, W1, b1 = (a.astype(np.float64) for a in (d0.W, d0.b, d1.W, d1.b))
    Xd = X.astype(dtype).astype(np.float64)
    expected = np_act(activation, Xd @ W0 + b0) @ W1 + b1
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for model in (fused, separate):
        out = model.forward(X)
        assert out.dtype == dtype and out.shape == (7, 2)
        np.testing.assert_allclose(out, expected, rtol=rtol, atol=rtol)


def test_forward_returns_a_new_array_each_call():
    model = two_layer()
    rng = np.random.default_rng(0)
    X1, X2 = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    out1 = model.forward(X1)
    kept = out1.copy()
    out2 = model.forward(X2)
    np.testing.assert_array_equal(out1, kept)  # not overwritten by the next call
    assert not np.shares_memory(out1, out2)
    out1[...] = 1e9  # and writing it does not touch the model
    np.testing.assert_array_equal(model.forward(X1), kept)
    for buffer in (model.params, model.grads):
        assert not np.shares_memory(out2, buffer)


def test_forward_accepts_lists_and_integers_and_converts_to_model_dtype():
    model = two_layer(dtype=np.float32)
    out = model.forward([[1, 2, 3], [0, -1, 2]])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, model.forward(np.array([[1.0, 2, 3], [0, -1, 2]])))


def test_activation_layer_first_takes_width_from_the_next_dense():
    model = nn.Sequential([nn.Activation("tanh"), nn.Dense(3, 2)], dtype=np.float64, seed=0)
    assert model.n_features == 3
    X = np.random.default_rng(0).standard_normal((4, 3))
    d = model.layers[1]
    np.testing.assert_allclose(model.forward(X), np.tanh(X) @ d.W + d.b, rtol=1e-12)


# ---------------------------------------------------------------- backward


@pytest.mark.parametrize("separate", [False, True], ids=["fused", "separate"])
def test_backward_fills_grads_with_dW_db(separate):
    rng = np.random.default_rng(4)
    layers = ([nn.Dense(3, 5), nn.Activation("tanh")] if separate
              else [nn.Dense(3, 5, activation="tanh")]) + [nn.Dense(5, 2)]
    model = nn.Sequential(layers, dtype=np.float64, seed=1)
    d0, d1 = model.layers[0], model.layers[-1]
    X = rng.standard_normal((6, 3))
    dout = rng.standard_normal((6, 2))
    out = model.forward(X, training=True)
    penalty = model.backward(dout)
    assert penalty == 0.0
    Z0 = X @ d0.W + d0.b
    A0 = np.tanh(Z0)
    np.testing.assert_allclose(out, A0 @ d1.W + d1.b, rtol=1e-12)
    dW1 = A0.T @ dout
    dZ0 = (dout @ d1.W.T) * (1 - A0 ** 2)
    dW0 = X.T @ dZ0
    np.testing.assert_allclose(d1.dW, dW1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(d1.db, dout.sum(axis=0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(d0.dW, dW0, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(d0.db, dZ0.sum(axis=0), rtol=1e-12, atol=1e-14)
    # the same numbers, read from the flat gradient buffer
    np.testing.assert_allclose(
        model.grads, np.concatenate([dW0.ravel(), dZ0.sum(0), dW1.ravel(), dout.sum(0)]),
        rtol=1e-12, atol=1e-14)


def test_backward_adds_l2_and_l1_terms_and_returns_the_penalty():
    rng = np.random.default_rng(5)
    model = nn.Sequential([nn.Dense(3, 2)], dtype=np.float64, seed=0)
    layer = model.layers[0]
    X, dout = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    l2, l1, m = 0.3, 0.2, 4
    model.forward(X, training=True)
    penalty = model.backward(dout, l2=l2, l1=l1)
    W = layer.W.copy()
    expected_penalty = l2 / (2 * m) * (W ** 2).sum() + l1 / m * np.abs(W).sum()
    assert penalty == pytest.approx(expected_penalty, rel=1e-12)
    assert model.penalty(l2, l1, m) == pytest.approx(expected_penalty, rel=1e-12)
    np.testing.assert_allclose(layer.dW, X.T @ dout + l2 / m * W + l1 / m * np.sign(W),
                               rtol=1e-12)
    np.testing.assert_allclose(layer.db, dout.sum(axis=0), rtol=1e-12)  # no penalty on b


def test_backward_before_forward_raises():
    model = two_layer()
    with pytest.raises(RuntimeError, match=r"call forward\(X, training=True\) first"):
        model.backward(np.zeros((2, 3)))


# ---------------------------------------------------------------- copy


def test_copy_to_float64_has_same_values_and_own_buffers():
    model = two_layer(dtype=np.float32, seed=3)
    model.layers[0].b[...] = [0.1, -0.2, 0.3, 0.0, 0.5]
    clone = model.copy(dtype=np.float64)
    assert clone.dtype == np.float64 and clone.params.dtype == np.float64
    assert clone.layers[0].W.dtype == np.float64
    np.testing.assert_array_equal(clone.params, model.params.astype(np.float64))
    assert all(a is not b for a, b in zip(clone.layers, model.layers))
    assert [type(a) for a in clone.layers] == [type(b) for b in model.layers]
    assert clone.config()["layers"] == model.config()["layers"]
    assert not np.shares_memory(clone.params, model.params)
    before = model.params.copy()
    clone.layers[0].W[...] = 0.0
    np.testing.assert_array_equal(model.params, before)
    X = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_allclose(model.copy(np.float64).forward(X), model.forward(X),
                               rtol=1e-5, atol=1e-6)


def test_copy_keeps_dtype_by_default_and_keeps_the_loss(blobs):
    X, y = blobs
    model = two_layer(dtype=np.float32)
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=1)
    clone = model.copy()
    assert clone.dtype == np.float32
    assert clone.params.tobytes() == model.params.tobytes()
    assert clone.loss is model.loss
    np.testing.assert_array_equal(clone.predict(X), model.predict(X))


def test_from_config_rebuilds_the_same_initial_model():
    model = nn.Sequential([nn.Dense(3, 4, activation="relu", init="glorot"),
                           nn.Dense(4, 2, use_bias=False, init="xavier")],
                          dtype=np.float64, seed=7)
    rebuilt = nn.Sequential.from_config(model.config())
    assert rebuilt.params.tobytes() == model.params.tobytes()
    assert rebuilt.config() == model.config()


# ---------------------------------------------------------------- predict, evaluate


def test_predict_gives_softmax_probabilities_that_sum_to_one(blobs):
    X, y = blobs
    model = two_layer()
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr=0.1), epochs=3)
    probs = model.predict(X)
    assert probs.shape == (60, 3)
    assert (probs > 0).all() and (probs < 1).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(probs, np_softmax(model.forward(X)), rtol=1e-10)


def test_predict_gives_sigmoid_probabilities_for_bce(blobs):
    X, y = blobs
    model = two_layer(n_out=1)
    yb = (y == 0).astype(float)
    model.fit(X, yb, loss=nn.BinaryCrossEntropy(), optimizer=nn.SGD(lr=0.1), epochs=3)
    probs = model.predict(X)
    assert probs.shape == (60, 1)
    assert (probs > 0).all() and (probs < 1).all()
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-model.forward(X))), rtol=1e-12)


def test_predict_needs_a_loss_and_is_the_raw_output_for_mse(blobs):
    X, y = blobs
    model = two_layer(n_out=2)
    with pytest.raises(ValueError, match=r"Sequential.predict: the model has no loss yet"):
        model.predict(X)
    model.loss = nn.SoftmaxCrossEntropy()   # known without a fit: probabilities
    np.testing.assert_allclose(model.predict(X).sum(axis=1), 1, rtol=1e-6)
    model.fit(X, X[:, :2], loss=nn.MeanSquaredError(), epochs=1)
    np.testing.assert_array_equal(model.predict(X), model.forward(X))


def test_predict_classes_is_argmax_or_threshold(blobs):
    X, y = blobs
    model = two_layer(seed=2)
    out = model.forward(X)
    classes = model.predict_classes(X)
    assert classes.dtype.kind == "i"
    np.testing.assert_array_equal(classes, out.argmax(axis=1))
    binary = two_layer(n_out=1, seed=2)
    out1 = binary.forward(X)[:, 0]
    assert 0 < (out1 > 0).sum() < len(out1)  # both classes occur: the test can fail
    np.testing.assert_array_equal(binary.predict_classes(X), (out1 > 0).astype(int))


def test_evaluate_softmax_loss_and_accuracy_match_numpy(blobs):
    X, y = blobs
    model = two_layer(seed=1)
    result = model.evaluate(X, y, loss=nn.SoftmaxCrossEntropy())
    assert set(result) == {"loss", "accuracy"}
    out = model.forward(X)
    p = np_softmax(out)
    assert result["loss"] == pytest.approx(-np.log(p[np.arange(60), y]).mean(), rel=1e-12)
    assert result["accuracy"] == pytest.approx((out.argmax(1) == y).mean())
    one_hot = np.eye(3)[y]
    assert model.evaluate(X, one_hot, loss=nn.SoftmaxCrossEntropy()) == result


def test_evaluate_bce_and_mse_match_numpy(blobs):
    X, y = blobs
    model = two_layer(seed=1, n_out=2)
    out = model.forward(X)
    T = np.stack([(y == 0), (y == 1)], axis=1).astype(float)
    result = model.evaluate(X, T, loss=nn.BinaryCrossEntropy())
    p = 1 / (1 + np.exp(-out))
    bce = -(T * np.log(p) + (1 - T) * np.log(1 - p)).mean()
    assert result["loss"] == pytest.approx(bce, rel=1e-10)
    assert result["accuracy"] == pytest.approx(((out > 0) == (T > 0.5)).mean())
    result = model.evaluate(X, X[:, :2], loss=nn.MeanSquaredError())
    assert set(result) == {"loss"}  # no accuracy for regression
    assert result["loss"] == pytest.approx(((out - X[:, :2]) ** 2).mean(), rel=1e-12)


def test_evaluate_defaults_to_the_loss_of_the_last_fit(blobs):
    X, y = blobs
    model = two_layer()
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=1)
    assert isinstance(model.loss, nn.SoftmaxCrossEntropy)
    assert model.evaluate(X, y) == model.evaluate(X, y, loss=nn.SoftmaxCrossEntropy())


def test_warmup_runs_every_kernel_path_and_reports_seconds():
    seconds = nn.warmup("float64")
    assert isinstance(seconds, float) and seconds > 0
    with pytest.raises(TypeError, match="warmup: dtype must be float32 or float64"):
        nn.warmup(["int8"])
