"""fit: mini-batch gradient descent, shuffling, History, determinism, convergence and
divergence."""
import io
import re
import sys

import numpy as np
import pytest

import nn


class CountingSGD(nn.SGD):
    """SGD that counts its steps."""

    def __init__(self, lr=0.01):
        super().__init__(lr)
        self.steps = 0

    def step(self, params, grads):
        self.steps += 1
        super().step(params, grads)


class EpochMarks(nn.Callback):
    """Records, at each epoch end, how many training batches had been seen."""

    def __init__(self, seen):
        self.seen, self.marks = seen, []

    def on_epoch_end(self, model, epoch, logs, history):
        self.marks.append(len(self.seen))


def record_batches(model):
    """Wrap the first layer's forward to record column 0 of every training batch."""
    seen = []
    layer = model.layers[0]
    real = layer.forward

    def forward(X, training):
        if training:
            seen.append(X[:, 0].copy())
        return real(X, training)
    layer.forward = forward
    return seen


def indexed_data(n, seed=0):
    """X whose column 0 is the row number, so a batch tells which rows it holds."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    X[:, 0] = np.arange(n)
    return X, np.arange(n) % 3


def small_model(dtype=np.float64, seed=0, n_in=3, n_out=3, hidden="tanh"):
    return nn.Sequential([nn.Dense(n_in, 6, activation=hidden), nn.Dense(6, n_out)],
                         dtype=dtype, seed=seed)


def batches_per_epoch(model, X, y, epochs, **kwargs):
    seen = record_batches(model)
    marks = EpochMarks(seen)
    # A subclass of SGD: fit trains on the per-layer path, where the first layer's
    # forward sees each batch (the compiled plan visits the same rows: test_plan.py).
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=CountingSGD(lr=1e-3),
              epochs=epochs, callbacks=[marks], **kwargs)
    bounds = [0] + marks.marks
    return [seen[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


# ---------------------------------------------------------------- batches and order


def test_fit_keeps_the_last_partial_batch():
    X, y = indexed_data(10)
    model = small_model()
    optimizer = CountingSGD(lr=1e-3)
    seen = record_batches(model)
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=optimizer, epochs=2,
              batch_size=4)
    assert optimizer.steps == 6  # 3 steps per epoch: 4 + 4 + 2 rows
    assert [len(b) for b in seen] == [4, 4, 2, 4, 4, 2]
    assert model.optimizer is optimizer
    assert optimizer.state.step == 6


@pytest.mark.parametrize("n, batch_size, steps", [(10, 10, 1), (10, 64, 1), (12, 4, 3),
                                                  (13, 4, 4), (5, 1, 5)])
def test_fit_steps_per_epoch(n, batch_size, steps):
    X, y = indexed_data(n)
    optimizer = CountingSGD(lr=1e-3)
    small_model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=optimizer, epochs=3,
                      batch_size=batch_size)
    assert optimizer.steps == 3 * steps


def test_fit_batch_size_at_least_n_is_one_full_batch_per_epoch():
    X, y = indexed_data(10)
    epochs = batches_per_epoch(small_model(), X, y, epochs=3, batch_size=100)
    for batches in epochs:
        assert len(batches) == 1
        assert sorted(batches[0].tolist()) == list(range(10))


def test_fit_reshuffles_every_epoch():
    X, y = indexed_data(20)
    epochs = batches_per_epoch(small_model(), X, y, epochs=3, batch_size=6, seed=1)
    orders = [np.concatenate(batches) for batches in epochs]
    for order in orders:  # every row exactly once per epoch
        assert sorted(order.tolist()) == list(range(20))
    assert orders[0].tolist() != list(range(20))  # shuffled
    assert orders[0].tolist() != orders[1].tolist()  # and reshuffled
    assert orders[1].tolist() != orders[2].tolist()


def test_fit_shuffle_order_follows_the_seed():
    X, y = indexed_data(20)

    def orders(seed):
        epochs = batches_per_epoch(small_model(), X, y, epochs=2, batch_size=6, seed=seed)
        return [np.concatenate(b).tolist() for b in epochs]
    assert orders(3) == orders(3)
    assert orders(3) != orders(4)


def test_fit_without_shuffle_visits_rows_in_order():
    X, y = indexed_data(10)
    epochs = batches_per_epoch(small_model(), X, y, epochs=2, batch_size=4, shuffle=False)
    for batches in epochs:
        assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


# ---------------------------------------------------------------- the update itself


def _np_softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _dout(loss_name, out, T):
    """d(mean loss)/d(out) in NumPy, averaged as the losses document."""
    m = out.shape[0]
    if loss_name == "softmax":
        return (_np_softmax(out) - np.eye(out.shape[1])[T]) / m
    if loss_name == "bce":
        return (1 / (1 + np.exp(-out)) - T) / out.size
    return 2 * (out - T) / out.size


def _problem(loss_name, n=10):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((n, 3))
    if loss_name == "softmax":
        return X, np.arange(n) % 3, nn.SoftmaxCrossEntropy(), 3
    if loss_name == "bce":
        return X, (X[:, :2] > 0).astype(float), nn.BinaryCrossEntropy(), 2
    return X, np.sin(X[:, :2]), nn.MeanSquaredError(), 2


@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("loss_name", ["softmax", "bce", "mse"])
@pytest.mark.parametrize("batch_size", [10, 4], ids=["full_batch", "mini_batch"])
def test_fit_one_epoch_equals_hand_computed_gradient_descent(batch_size, loss_name, l2):
    X, T, loss, n_out = _problem(loss_name)
    lr = 0.5
    fitted = small_model(n_out=n_out, seed=3)
    by_hand = small_model(n_out=n_out, seed=3)
    history = fitted.fit(X, T, loss=loss, optimizer=nn.SGD(lr=lr), epochs=1,
                         batch_size=batch_size, l2=l2, shuffle=False)
    costs = []
    for lo in range(0, 10, batch_size):
        xb, tb = X[lo:lo + batch_size], T[lo:lo + batch_size]
        out = by_hand.forward(xb, training=True)
        penalty = by_hand.backward(_dout(loss_name, out, tb), l2=l2)
        costs.append((by_hand.evaluate(xb, tb, loss=loss)["loss"] + penalty) * len(xb))
        by_hand.params -= lr * by_hand.grads
    assert not np.allclose(fitted.params, small_model(n_out=n_out, seed=3).params)
    np.testing.assert_allclose(fitted.params, by_hand.params, rtol=1e-10, atol=1e-12)
    assert history["loss"][0] == pytest.approx(sum(costs) / 10, rel=1e-10)


def test_fit_full_batch_history_loss_is_the_cost_before_the_step():
    X, y, loss, _ = _problem("softmax")
    model = small_model()
    before = model.evaluate(X, y, loss=loss)
    penalty = model.penalty(l2=0.2, m=10)
    history = model.fit(X, y, loss=loss, optimizer=nn.SGD(lr=0.1), epochs=1,
                        batch_size=10, l2=0.2)
    assert history["loss"][0] == pytest.approx(before["loss"] + penalty, rel=1e-12)
    assert history["accuracy"][0] == before["accuracy"]


# ---------------------------------------------------------------- History


def test_history_records_every_metric_per_epoch(blobs):
    X, y = blobs
    Xtr, ytr, Xdev, ydev = X[:40], y[:40], X[40:], y[40:]
    model = small_model()
    history = model.fit(Xtr, ytr, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr=0.1),
                        epochs=4, batch_size=8, validation_data=(Xdev, ydev))
    assert isinstance(history, nn.History)
    assert set(history.history) == {"loss", "accuracy", "dev_loss", "dev_accuracy", "lr",
                                    "time"}
    for key in history.history:
        assert key in history and len(history[key]) == 4
    assert history.epochs == [1, 2, 3, 4]
    assert history["lr"] == [0.1] * 4
    assert all(t > 0 for t in history["time"])
    assert all(0.0 <= a <= 1.0 for a in history["accuracy"] + history["dev_accuracy"])
    assert history["loss"][-1] < history["loss"][0]  # it learns
    final = model.evaluate(Xdev, ydev)  # dev metrics are those of the epoch's end
    assert history["dev_loss"][-1] == final["loss"]
    assert history["dev_accuracy"][-1] == final["accuracy"]
    assert history.last()["dev_loss"] == final["loss"]
    assert history.stopped_epoch is None
    assert "History(epochs=4" in repr(history)


def test_history_final_is_measured_on_first_access_from_the_weights_fit_returned(
        blobs, monkeypatch):
    X, y = blobs
    Xtr, ytr, Xdev, ydev = X[:40], y[:40], X[40:], y[40:]
    model = small_model()
    calls = []
    evaluate = nn.Sequential._evaluate
    monkeypatch.setattr(nn.Sequential, "_evaluate",
                        lambda self, *a, **k: calls.append(1) or evaluate(self, *a, **k))
    history = model.fit(Xtr, ytr, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr=0.1),
                        epochs=2, batch_size=8, validation_data=(Xdev, ydev))
    calls.clear()  # the per-epoch dev passes
    expected_train, expected_dev = model.evaluate(Xtr, ytr), model.evaluate(Xdev, ydev)
    calls.clear()
    model.params[...] = 0.0  # training on after fit does not change what final says
    final = history.final
    assert len(calls) == 2   # train and dev, once
    assert final == {"epoch": 2, **expected_train,
                     **{"dev_" + k: v for k, v in expected_dev.items()}}
    assert history.final is final and len(calls) == 2


def test_history_for_regression_has_no_accuracy():
    X, T, loss, n_out = _problem("mse")
    history = small_model(n_out=n_out).fit(X, T, loss=loss, epochs=2,
                                           validation_data=(X, T))
    assert set(history.history) == {"loss", "dev_loss", "lr", "time"}


def test_fit_schedule_sets_lr_per_epoch_and_initial_epoch_resumes_the_count():
    X, y = indexed_data(12)
    calls = []

    def schedule(epoch):
        calls.append(epoch)
        return 0.1 / (1 + epoch)
    history = small_model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=5,
                                initial_epoch=2, schedule=schedule)
    assert calls == [2, 3, 4]       # epochs done before each one
    assert history.epochs == [3, 4, 5]  # counted from 1, as printed
    assert history["lr"] == pytest.approx([0.1 / 3, 0.1 / 4, 0.1 / 5])


def test_fit_callbacks_are_called_and_can_stop_training():
    X, y = indexed_data(12)
    events = []

    class Stopper(nn.Callback):
        def on_train_begin(self, model, history):
            events.append("begin")

        def on_epoch_end(self, model, epoch, logs, history):
            events.append(epoch)
            assert set(logs) >= {"loss", "accuracy", "lr", "time"}
            if epoch == 3:
                model.stop_training = True

        def on_train_end(self, model, history):
            events.append("end")
    history = small_model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=10,
                                callbacks=[Stopper()])
    assert events == ["begin", 1, 2, 3, "end"]
    assert history.epochs == [1, 2, 3] and history.stopped_epoch == 3


def test_fit_verbose_2_prints_one_line_per_epoch_to_stderr(capsys):
    X, y = indexed_data(12)
    small_model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=3, verbose=2)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("epoch 1/3") and "loss" in lines[0] and "accuracy" in lines[0]
    small_model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=3, verbose=0)
    assert capsys.readouterr() == ("", "")


def test_fit_verbose_auto_is_silent_when_stderr_is_not_a_terminal(capsys):
    X, y = indexed_data(12)
    small_model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=3)  # verbose="auto"
    assert capsys.readouterr() == ("", "")


def test_fit_verbose_1_shows_a_progress_bar_with_the_metrics(capsys):
    pytest.importorskip("tqdm")
    X, y = indexed_data(12)
    small_model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=3, verbose=1,
                      validation_data=(X, y))
    out, err = capsys.readouterr()
    assert out == ""
    assert "3/3" in err and "epoch" in err and "dev_accuracy" in err


def test_fit_verbose_auto_shows_the_bar_on_a_terminal_and_resumes_its_count(monkeypatch):
    pytest.importorskip("tqdm")

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    monkeypatch.setattr(sys, "stderr", Terminal())
    X, y = indexed_data(12)
    model = small_model()
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=2, verbose=0)
    model.fit(X, y, epochs=4, initial_epoch=2)   # verbose="auto"
    err = sys.stderr.getvalue()
    assert "2/4" in err and "4/4" in err and "1/4" not in err


def test_fit_verbose_1_without_tqdm_prints_the_lines_of_verbose_2(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)   # makes the import fail
    X, y = indexed_data(12)
    small_model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=2, verbose=1)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]


@pytest.mark.parametrize("verbose", [3, -1, "loud", 1.5])
def test_fit_rejects_a_bad_verbose(verbose):
    X, y = indexed_data(12)
    with pytest.raises((ValueError, TypeError), match="verbose"):
        small_model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=1, verbose=verbose)


def test_fit_leaves_its_inputs_unchanged(blobs):
    X, y = blobs
    X32 = X.astype(np.float32)
    X_before, y_before = X32.copy(), y.copy()
    small_model(dtype=np.float32).fit(X32, y, loss=nn.SoftmaxCrossEntropy(), epochs=2)
    np.testing.assert_array_equal(X32, X_before)
    np.testing.assert_array_equal(y, y_before)


def test_fit_accepts_one_hot_labels_like_indices(blobs):
    X, y = blobs
    a, b = small_model(), small_model()
    a.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=2, batch_size=16)
    b.fit(X, np.eye(3)[y], loss=nn.SoftmaxCrossEntropy(), epochs=2, batch_size=16)
    assert a.params.tobytes() == b.params.tobytes()


# ---------------------------------------------------------------- determinism


def _fit_bytes(dtype, model_seed=0, fit_seed=0, data=None):
    X, y = data
    model = nn.Sequential([nn.Dense(3, 8, activation="relu"), nn.Dense(8, 3)],
                          dtype=dtype, seed=model_seed)
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr=0.05), epochs=3,
              batch_size=7, validation_data=(X[:10], y[:10]), seed=fit_seed)
    return model.params.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_same_seed_gives_the_same_bytes(dtype, blobs):
    assert _fit_bytes(dtype, data=blobs) == _fit_bytes(dtype, data=blobs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_different_seed_gives_different_params(dtype, blobs):
    reference = _fit_bytes(dtype, data=blobs)
    assert _fit_bytes(dtype, fit_seed=1, data=blobs) != reference  # shuffling
    assert _fit_bytes(dtype, model_seed=1, data=blobs) != reference  # initialization


def test_fit_same_seed_same_history(blobs):
    X, y = blobs

    def run():
        model = small_model(dtype=np.float32)
        h = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=3, batch_size=8,
                      validation_data=(X, y))
        return {k: v for k, v in h.history.items() if k != "time"}
    assert run() == run()


# ---------------------------------------------------------------- convergence


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_mse_on_a_linear_problem_converges(dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    w, b = np.array([[1.5], [-2.0], [0.5]]), 0.7
    y = X @ w + b + 0.01 * rng.standard_normal((200, 1))
    model = nn.Sequential([nn.Dense(3, 1)], dtype=dtype, seed=0)
    history = model.fit(X, y, loss=nn.MeanSquaredError(), optimizer=nn.SGD(lr=0.05),
                        epochs=15, batch_size=20)
    loss = history["loss"]
    assert loss[0] > 1.0
    assert all(a > 2 * c for a, c in zip(loss[:5], loss[1:6]))  # fast, steady descent
    assert loss[-1] < 1.5e-4  # down to the noise variance, 1e-4
    np.testing.assert_allclose(model.layers[0].W, w, atol=5e-3)
    np.testing.assert_allclose(model.layers[0].b, [b], atol=5e-3)


def test_fit_bce_on_a_separable_problem_reaches_high_accuracy():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 2))
    y = (X[:, 0] + 2 * X[:, 1] > 0.3).astype(float)
    model = nn.Sequential([nn.Dense(2, 8, activation="tanh"), nn.Dense(8, 1)], seed=0)
    history = model.fit(X[:200], y[:200], loss=nn.BinaryCrossEntropy(),
                        optimizer=nn.SGD(lr=0.5), epochs=40, batch_size=16,
                        validation_data=(X[200:], y[200:]))
    assert history["accuracy"][0] < 0.95
    assert history["accuracy"][-1] >= 0.97
    assert history["dev_accuracy"][-1] >= 0.95
    assert model.evaluate(X[200:], y[200:])["accuracy"] >= 0.95
    np.testing.assert_array_equal(model.predict_classes(X[200:]),
                                  (model.predict(X[200:])[:, 0] > 0.5).astype(int))


def test_fit_softmax_on_blobs_reaches_full_accuracy(make_blobs):
    X, y = make_blobs(n=150, n_classes=3, seed=2)
    model = small_model(hidden="relu")
    history = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr=0.1),
                        epochs=15, batch_size=16)
    assert history["accuracy"][-1] == 1.0
    assert model.evaluate(X, y)["accuracy"] == 1.0


# ---------------------------------------------------------------- divergence


def _unnormalized(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = 100.0 * rng.standard_normal((n, 5)) + 50.0
    return X, (X[:, 0] > 50).astype(np.int64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_size", [16, 64], ids=["mini_batch", "full_batch"])
def test_fit_huge_lr_raises_divergence_and_keeps_finite_weights(dtype, batch_size):
    X, y = _unnormalized()
    model = nn.Sequential([nn.Dense(5, 16, activation="relu"), nn.Dense(16, 2)],
                          dtype=dtype, seed=0)
    with pytest.raises(nn.DivergenceError, match=r"the cost became (nan|inf|-inf) at epoch"):
        model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr=1e3),
                  epochs=100, batch_size=batch_size)
    assert issubclass(nn.DivergenceError, FloatingPointError)
    assert np.isfinite(model.params).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss_name", ["softmax", "mse"])
def test_fit_divergence_leaves_weights_that_give_a_finite_cost(dtype, loss_name):
    """The design: a loss that turns NaN stops training and leaves the last good
    weights. With full-batch steps every divergence shows at the first step of an epoch,
    so the weights from the start of that epoch are the ones that just failed."""
    X, y = _unnormalized()
    out = 2 if loss_name == "softmax" else 1
    loss = nn.SoftmaxCrossEntropy() if loss_name == "softmax" else nn.MeanSquaredError()
    T = y if loss_name == "softmax" else 3.0 * X[:, :1]
    model = nn.Sequential([nn.Dense(5, 16, activation="relu"), nn.Dense(16, out)],
                          dtype=dtype, seed=0)
    snapshots = {0: model.params.copy()}  # the weights at the end of each epoch

    class Snapshot(nn.Callback):
        def on_epoch_end(self, model, epoch, logs, history):
            snapshots[epoch] = model.params.copy()
    with pytest.raises(nn.DivergenceError) as info:
        model.fit(X, T, loss=loss, optimizer=nn.SGD(lr=1e3), epochs=100, batch_size=64,
                  callbacks=[Snapshot()])
    failed, kept = map(int, re.search(r"at epoch (\d+), step 1; the model keeps the "
                                      r"weights from the start of epoch (\d+)",
                                      str(info.value)).groups())
    assert failed >= 2 and kept == failed - 1
    assert model.params.tobytes() == snapshots[kept - 1].tobytes()
    assert np.isfinite(model.params).all()
    assert np.isfinite(model.evaluate(X, T, loss=loss)["loss"])


def test_fit_divergence_in_the_first_step_keeps_the_initial_weights():
    X, y = _unnormalized()
    model = nn.Sequential([nn.Dense(5, 4), nn.Dense(4, 1)], seed=0)
    for layer in model.layers:  # the float32 output overflows at once
        layer.W[...] = 1e30
    before = model.params.tobytes()
    with pytest.raises(nn.DivergenceError, match="epoch 1, step 1"):
        model.fit(X, X[:, :1] * 0, loss=nn.MeanSquaredError(), epochs=2)
    assert model.params.tobytes() == before
