"""One model shared by threads: inference is safe and exact, a second fit is refused,
and inference runs in bounded chunks that leave nothing behind."""
import gc
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import pytest

import nn
from nn import _threads


@pytest.fixture
def one_thread():
    """``nn.set_num_threads(1)`` for the test, then the suite's settings back (Numba's
    default, BLAS at 1)."""
    before = numba.get_num_threads()
    nn.set_num_threads(1)
    yield
    _threads._chosen = None
    numba.set_num_threads(before)


def _model(dtype=np.float32):
    """Dense, BatchNorm with a fused activation, a separate activation, dropout and a
    standardizer: every layer's inference path, trained so the statistics are real."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 20)) * 3 + 1
    y = rng.integers(0, 4, 300)
    model = nn.Sequential([nn.Dense(20, 48, use_bias=False), nn.BatchNorm(48),
                           nn.Activation("relu"), nn.Dropout(0.8),
                           nn.Dense(48, 32), nn.Activation("tanh"), nn.Dense(32, 4)],
                          dtype=dtype, seed=0)
    model.standardizer = nn.data.Standardizer().fit(X)
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.01), epochs=2,
              batch_size=32)
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inference_from_many_threads_equals_serial_bit_for_bit(dtype, one_thread):
    """Bit for bit also needs the same BLAS thread count in every thread: oneMKL keeps
    it per OS thread, and nn applies ``set_num_threads``'s choice in each."""
    model = _model(dtype)
    rng = np.random.default_rng(1)
    # Equal row counts (which once shared one set of buffers) and unequal ones, both
    # below and above one chunk; float64 inputs are converted chunk by chunk.
    sizes = [200, 200, 200, 37, 1, 513, 200, 64]
    inputs = [rng.standard_normal((n, 20)) for n in sizes]
    labels = [rng.integers(0, 4, n) for n in sizes]
    calls = {
        "predict": lambda i: model.predict(inputs[i], batch_size=128),
        "forward": lambda i: model.forward(inputs[i]),
        "classes": lambda i: model.predict_classes(inputs[i], batch_size=100),
        "evaluate": lambda i: model.evaluate(inputs[i], labels[i], batch_size=64),
    }
    expected = {k: [f(i) for i in range(len(sizes))] for k, f in calls.items()}

    def same(a, b):
        if isinstance(a, dict):
            return a == b
        return a.dtype == b.dtype and np.array_equal(a, b)

    def hammer(i):
        wrong = 0
        for _ in range(25):
            for kind, f in calls.items():
                wrong += not same(f(i), expected[kind][i])
        return wrong

    with ThreadPoolExecutor(len(sizes)) as pool:
        assert list(pool.map(hammer, range(len(sizes)))) == [0] * len(sizes)


def _blocking_fit(model, X, y, started, release, errors):
    class Hold(nn.Callback):
        def on_epoch_end(self, model, epoch, logs, history):
            if epoch == 1:
                started.set()
                release.wait(30)

    try:
        model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.01), epochs=3,
                  batch_size=16, callbacks=[Hold()])
    except Exception as exc:  # noqa: BLE001  (reported to the main thread)
        errors.append(exc)


def test_a_second_fit_from_another_thread_is_refused_and_leaves_the_first_intact():
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((100, 20)), rng.integers(0, 4, 100)
    alone = _model()
    reference = alone.copy()
    reference.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.01), epochs=3,
                  batch_size=16)

    started, release, errors = threading.Event(), threading.Event(), []
    worker = threading.Thread(target=_blocking_fit, name="trainer",
                              args=(alone, X, y, started, release, errors))
    worker.start()
    try:
        assert started.wait(30)
        with pytest.raises(RuntimeError, match=r"already training \(fit running in "
                                               r"thread 'trainer', epoch 1 of 3\)"):
            alone.fit(X[:7], y[:7], epochs=2, batch_size=1000)
        with pytest.raises(RuntimeError, match="the model is training"):
            alone.forward(X[:5], training=True)
        with pytest.raises(RuntimeError, match="the model is training"):
            alone.backward(np.zeros((5, 4), np.float32))
        alone.predict(X[:5])  # inference stays available (it sees the current weights)
    finally:
        release.set()
        worker.join(60)
    assert not errors
    np.testing.assert_array_equal(alone.params, reference.params)
    np.testing.assert_array_equal(alone.buffers, reference.buffers)
    # Released: the model trains again.
    alone.fit(X, y, epochs=1, batch_size=16)


def test_fit_releases_the_model_when_it_raises():
    model = _model()
    with pytest.raises(ValueError):
        model.fit(np.ones((10, 3)), np.zeros(10, int))
    model.fit(np.ones((10, 20)), np.zeros(10, int), epochs=1)


@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000, None])
def test_chunked_inference_agrees_with_one_chunk(batch_size):
    model = _model()
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((300, 20)), rng.integers(0, 4, 300)
    whole = model.predict(X, batch_size=300)
    np.testing.assert_allclose(model.predict(X, batch_size=batch_size), whole,
                               rtol=1e-5, atol=1e-6)
    a = model.evaluate(X, y, batch_size=300)
    b = model.evaluate(X, y, batch_size=batch_size)
    assert b["accuracy"] == pytest.approx(a["accuracy"], abs=1 / 300)
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                      (True, TypeError)])
def test_inference_batch_size_is_checked(bad, exc):
    model = _model()
    with pytest.raises(exc, match=r"Sequential.predict: batch_size"):
        model.predict(np.ones((4, 20)), batch_size=bad)
    with pytest.raises(exc, match=r"Sequential.evaluate: batch_size"):
        model.evaluate(np.ones((4, 20)), [0, 1, 2, 3], batch_size=bad)


def test_predict_memory_is_bounded_by_the_chunk_and_nothing_stays_held():
    """A float64 input with a standardizer: the old path held a converted copy and
    per-row-count buffers; now a call needs about one chunk and keeps nothing."""
    model = nn.Sequential([nn.Dense(400, 256, activation="relu"), nn.Dense(256, 10)],
                          seed=0)
    rng = np.random.default_rng(4)
    model.standardizer = nn.data.Standardizer().fit(rng.standard_normal((50, 400)))
    model.loss = nn.SoftmaxCrossEntropy()
    X = rng.standard_normal((20_000, 400))                    # 64 MB of float64
    model.predict(X[:10], batch_size=500)                     # compile outside the trace
    output_bytes = X.shape[0] * 10 * 4
    chunk_bytes = 500 * (400 * 8 + 400 * 4 + 256 * 4 + 10 * 4)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        out = model.predict(X, batch_size=500)
        current, peak = tracemalloc.get_traced_memory()
        del out
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert peak - before - output_bytes < 2 * chunk_bytes   # about 2.4 MB, not 100 MB
    assert current - before < output_bytes + 64 * 1024      # the result, nothing else
    assert after - before < 64 * 1024                       # nothing held afterwards
    assert all(not hasattr(layer, "_X") for layer in model.layers)


def test_inference_without_a_fit_and_output_checks():
    model = nn.Sequential([nn.Dense(3, 2)], seed=0)
    model.loss = nn.MeanSquaredError()
    np.testing.assert_array_equal(model.predict(np.ones((5, 3)), batch_size=2),
                                  model.forward(np.ones((5, 3))))
    with pytest.raises(ValueError, match=r"Sequential.predict: X must have 3 columns"):
        model.predict(np.ones((5, 4)))
    with pytest.raises(ValueError, match=r"Sequential.predict: X has values too large"):
        model.predict(np.full((2, 3), 1e300))


def test_a_thread_started_later_runs_with_the_chosen_thread_counts(one_thread):
    model = nn.Sequential([nn.Dense(3, 2)], seed=0)
    model.loss = nn.MeanSquaredError()
    seen = []

    def serve():
        model.predict(np.ones((2, 3)))
        seen.append(nn.get_num_threads())

    worker = threading.Thread(target=serve)
    worker.start()
    worker.join()
    assert seen == [{"numba": 1, "blas": 1}]
