"""The compiled training plan gives the same bytes as the per-layer reference path.

Each case trains twice from the same model, once with ``fit``'s compiled plan (one
jitted call per step, ``nn._plan``) and once on the reference path
(``nn.training.USE_PLAN = False``: the layers' forward/backward, the loss and the
optimizer called from Python), and compares every byte the run leaves: parameters,
running statistics, the optimizer's state, the Dropout counters and the history.
Between them the cases cover every layer type, activation, loss, optimizer,
schedule, regularizer, row weights and augmentation, partial last batches, and
kernels below and above the parallel threshold, with 1 and 2 Numba threads.
"""
import numba
import numpy as np
import pytest

import kernels
import nn
from nn import training


def _blob_data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, 3, n)


def _case_mlp_adam():
    """Every fused activation, Adam, L2, a per-step schedule, a partial last batch."""
    X, y = _blob_data(70, 6)
    model = nn.Sequential([nn.Dense(6, 16, activation="relu"),
                           nn.Dense(16, 12, activation="tanh", init="xavier"),
                           nn.Dense(12, 10, activation="leaky_relu"),
                           nn.Dense(10, 8, activation="sigmoid"),
                           nn.Dense(8, 3)], seed=1)
    fit = dict(loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(lr=0.01), epochs=3,
               batch_size=16, l2=0.05, schedule=nn.schedules.InverseSqrtStepDecay(0.01))
    return model, X, y, fit


def _case_batchnorm_dropout():
    """BatchNorm with a fused and a standalone Activation, Dropout, Momentum, L1,
    an epoch schedule, class weights, validation data."""
    X, y = _blob_data(90, 5, seed=2)
    model = nn.Sequential([nn.Dense(5, 12, use_bias=False), nn.BatchNorm(12),
                           nn.Activation("relu"), nn.Dropout(0.8),
                           nn.Dense(12, 9, activation="tanh"), nn.Activation("sigmoid"),
                           nn.Dropout(0.6), nn.Dense(9, 3)], dtype=np.float64, seed=2)
    fit = dict(loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Momentum(lr=0.05, beta=0.8),
               epochs=3, batch_size=32, l1=0.01, class_weight="balanced",
               schedule=nn.schedules.ExponentialDecay(0.05, 0.9),
               validation_data=(X[:20], y[:20]))
    return model, X, y, fit


def _case_binary_rmsprop():
    """BinaryCrossEntropy with one output, RMSprop, sample weights, Dropout kept at 1."""
    X, y = _blob_data(50, 4, seed=3)
    w = np.random.default_rng(3).uniform(0.2, 2.0, 50)
    model = nn.Sequential([nn.Dense(4, 8, activation="relu"), nn.Dropout(1.0),
                           nn.Dense(8, 1)], seed=3)
    fit = dict(loss=nn.BinaryCrossEntropy(), optimizer=nn.RMSprop(lr=0.01), epochs=2,
               batch_size=12, sample_weight=w)
    return model, X, (y > 0).astype(float), fit


def _case_mse_sgd_augment():
    """MeanSquaredError over two outputs, SGD, L2 and L1 together, augmentation
    (shifts, flips and noise on 4 x 4 images)."""
    X, _ = _blob_data(40, 16, seed=4)
    Y = np.stack([X[:, :4].sum(1), X[:, 4:8].mean(1)], axis=1)
    model = nn.Sequential([nn.Dense(16, 10, activation="tanh"), nn.Dense(10, 2)],
                          dtype=np.float64, seed=4)
    fit = dict(loss=nn.MeanSquaredError(), optimizer=nn.SGD(lr=0.02), epochs=2,
               batch_size=8, l2=0.1, l1=0.01,
               augment=nn.Augment(noise=0.1, image_shape=(4, 4), max_shift=1, flip=True))
    return model, X, Y, fit


def _case_parallel():
    """Layers of 300 x 256 outputs and 70k+ parameters: the kernels' parallel builds."""
    X, y = _blob_data(300, 20, seed=5)
    model = nn.Sequential([nn.Dense(20, 256, use_bias=False), nn.BatchNorm(256),
                           nn.Activation("relu"), nn.Dropout(0.9),
                           nn.Dense(256, 256, activation="relu"), nn.Dense(256, 3)],
                          seed=5)
    assert 300 * 256 >= kernels.PARALLEL_MIN_SIZE
    fit = dict(loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(lr=1e-3), epochs=2,
               batch_size=300, l2=0.01)
    return model, X, y, fit


CASES = [_case_mlp_adam, _case_batchnorm_dropout, _case_binary_rmsprop,
         _case_mse_sgd_augment, _case_parallel]


def _run(case, use_plan, monkeypatch):
    model, X, y, fit = case()
    monkeypatch.setattr(training, "USE_PLAN", use_plan)
    history = model.fit(X, y, seed=7, verbose=0, **fit)
    state = model.optimizer.state
    return {
        "params": model.params.tobytes(),
        "buffers": model.buffers.tobytes(),
        "optimizer": [a.tobytes() if isinstance(a, np.ndarray) else a for a in state],
        "layers": model.layer_states(),
        "history": {k: np.asarray(v).tobytes() for k, v in history.items() if k != "time"},
        "final": history.final,
    }


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__[len("_case_"):])
def test_plan_same_bytes_as_reference(case, threads, monkeypatch):
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("one core")
    before = numba.get_num_threads()
    numba.set_num_threads(threads)   # BLAS threads stay fixed (conftest)
    try:
        planned = _run(case, True, monkeypatch)
        reference = _run(case, False, monkeypatch)
    finally:
        numba.set_num_threads(before)
    assert planned == reference


def test_plan_is_used_and_resumes_dropout_counters(monkeypatch):
    """fit takes the plan for the library's own layers; the Dropout step counters it
    advances are the layers' (a second fit continues the masks)."""
    calls = []
    original = training._plan.TrainingPlan.step

    def counting(self, *args):
        calls.append(1)
        return original(self, *args)

    monkeypatch.setattr(training._plan.TrainingPlan, "step", counting)
    model, X, y, fit = _case_batchnorm_dropout()
    model.fit(X, y, verbose=0, **fit)
    steps_per_epoch = -(-X.shape[0] // fit["batch_size"])
    assert len(calls) == fit["epochs"] * steps_per_epoch
    assert [s["step"] for s in model.layer_states().values()] == \
        [fit["epochs"] * steps_per_epoch] * 2


def test_custom_layer_takes_reference_path(monkeypatch):
    """A subclass the plan does not know trains on the per-layer path."""
    class Scaled(nn.Dense):
        pass

    calls = []
    monkeypatch.setattr(training._plan.TrainingPlan, "step",
                        lambda *a: calls.append(1))
    X, y = _blob_data(20, 3)
    model = nn.Sequential([Scaled(3, 4, activation="relu"), nn.Dense(4, 3)], seed=0)
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=1, batch_size=10, verbose=0)
    assert calls == []
