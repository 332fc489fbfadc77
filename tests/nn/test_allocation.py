"""A training step allocates nothing after the first batch of each size."""
import numpy as np
import pytest

import nn


@pytest.fixture
def count_allocations(monkeypatch):
    counts = {"n": 0}
    for name in ("empty", "empty_like", "zeros", "zeros_like", "ones", "array", "copy"):
        original = getattr(np, name)

        def counting(*args, _original=original, **kwargs):
            counts["n"] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(np, name, counting)
    return counts


def _fit(model, n_rows, count_allocations):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_rows, 6)).astype(np.float32)
    y = rng.integers(0, 3, n_rows)
    before = count_allocations["n"]
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr=0.01), epochs=1,
              batch_size=16)
    return count_allocations["n"] - before


def test_fit_allocates_nothing_per_step(count_allocations):
    model = nn.Sequential([nn.Dense(6, 8, activation="tanh"), nn.Activation("relu"),
                           nn.Dense(8, 3)], seed=0)
    _fit(model, 70, count_allocations)      # warm: buffers for batch 16 and for 6 rows
    few_steps = _fit(model, 70, count_allocations)        # 5 steps
    many_steps = _fit(model, 16 * 40 + 6, count_allocations)  # 41 steps, same two sizes
    assert many_steps == few_steps


def test_layer_work_buffers_are_reused():
    model = nn.Sequential([nn.Dense(6, 8, activation="relu"), nn.Dense(8, 3)], seed=0)
    X = np.random.default_rng(1).standard_normal((40, 6))
    y = np.arange(40) % 3
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=1, batch_size=16)
    first = {n: [id(a) for a in w] for n, w in model.layers[0]._work_cache.items()}
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=2, batch_size=16)
    again = {n: [id(a) for a in w] for n, w in model.layers[0]._work_cache.items()}
    assert sorted(first) == [8, 16]
    assert first == again
