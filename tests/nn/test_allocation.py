"""A training step allocates nothing after the first batch of each size.

Measured with the ``allocations`` fixture (tests/nn/conftest.py), which sees every NumPy
data allocation (tracemalloc's NumPy domain: np.empty, but also .copy(), .astype(),
fancy indexing and ufunc temporaries) and every allocation by Numba's jitted code (the
NRT's statistics: np.empty in a kernel, parfor reduction arrays, returned arrays).

An array made and freed within a step shows only in the step's traced peak, on top of
Python's own short-lived objects (views, tuples, floats, and Numba's typing of the
compiled plan's array arguments: 0.9 to 3.7 KiB measured), so each configuration runs
in two shapes that make every array a step could make at least 6 KiB (1536 float32
values): "rows" (batches of 2048 and 1536 rows: any per-row array) and "units" (layers
1536 wide: any per-unit or per-output array); parameter-sized arrays are large in both.
The hidden activations of "rows" (2048 x 128) and the optimizer update over the 4.7
million parameters of "units" take the kernels' parallel variants
(``kernels.PARALLEL_MIN_SIZE`` elements), so parfors are measured too.
"""
import numpy as np
import pytest
from numba import njit

import nn

#: (batch rows, last batch rows, features, hidden units, outputs) per shape.
SHAPES = {"rows": (2048, 1536, 16, 128, 16), "units": (16, 12, 16, 1536, 1536)}
FEW, MANY = 1, 5    # full batches per epoch, before the last partial one
#: Above Python's transient objects in a step, below the smallest array a step could
#: make in either shape (6 KiB).
PEAK_LIMIT = 5120


def _config(name, H, C):
    """(layers after the first Dense, dtype, loss, optimizer factory, extra fit kwargs,
    binary targets)."""
    if name == "sgd-augment-bce":
        return ([nn.Dense(H, H, activation="sigmoid"), nn.Dense(H, C)], np.float64,
                nn.BinaryCrossEntropy(), lambda: nn.SGD(lr=0.01),
                {"augment": nn.Augment(noise=0.1)}, True)
    if name == "dropout-momentum-sample_weight":
        return ([nn.Dense(H, H, activation="relu"), nn.Dropout(0.8), nn.Dense(H, C)],
                np.float64, nn.SoftmaxCrossEntropy(), lambda: nn.Momentum(lr=0.01),
                {"sample_weight": True, "class_weight": "balanced"}, False)
    if name == "batchnorm-rmsprop-l2-l1":
        return ([nn.Dense(H, H, use_bias=False), nn.BatchNorm(H), nn.Activation("tanh"),
                 nn.Dense(H, C)], np.float64, nn.SoftmaxCrossEntropy(),
                lambda: nn.RMSprop(lr=1e-3), {"l2": 1e-3, "l1": 1e-4}, False)
    if name == "everything-adam-float32":
        return ([nn.Dense(H, H, use_bias=False), nn.BatchNorm(H), nn.Activation("relu"),
                 nn.Dropout(0.9), nn.Dense(H, H, activation="leaky_relu"), nn.Dense(H, C)],
                np.float32, nn.SoftmaxCrossEntropy(), lambda: nn.Adam(lr=1e-3),
                {"l2": 1e-3, "sample_weight": True}, False)
    raise KeyError(name)


CONFIGS = [f"{name}-{shape}" for name in
           ["sgd-augment-bce", "dropout-momentum-sample_weight", "batchnorm-rmsprop-l2-l1",
            "everything-adam-float32"]
           for shape in SHAPES]


class Run:
    """A model of one configuration, and data for MANY full batches and a last partial
    one; ``fit(full_batches, **kwargs)`` trains one epoch (unless told) on the first
    rows, so every fit has batches of both sizes (``batch`` and ``last`` rows)."""

    def __init__(self, config):
        name, shape = config.rsplit("-", 1)
        self.batch, self.last, F, H, C = SHAPES[shape]
        layers, dtype, self.loss, optimizer, self.kwargs, binary = _config(name, H, C)
        self.model = nn.Sequential([nn.Dense(F, H, activation="relu")] + layers,
                                   dtype=dtype, seed=0)
        self.optimizer = optimizer()
        n = MANY * self.batch + self.last
        rng = np.random.default_rng(0)
        self.X = rng.standard_normal((n, F)).astype(dtype)
        self.y = (rng.random((n, C)) < 0.5).astype(dtype) if binary else \
            rng.integers(0, C, n)
        self.weights = rng.random(n) + 0.5

    def fit(self, full_batches, **kwargs):
        n = full_batches * self.batch + self.last
        kw = {**self.kwargs, "epochs": 1, **kwargs}
        if kw.get("sample_weight") is True:
            kw["sample_weight"] = self.weights[:n]
        return self.model.fit(self.X[:n], self.y[:n], loss=self.loss,
                              optimizer=self.optimizer, batch_size=self.batch, verbose=0,
                              **kw)


@pytest.mark.parametrize("name", CONFIGS)
def test_steps_after_the_first_of_each_size_allocate_nothing(name, allocations):
    run = Run(name)
    with allocations.measure() as first:
        run.fit(FEW)  # work buffers for both batch sizes, the optimizer's state
    # The meter sees the first fit's work buffers (the hidden layer's activations at
    # least), whether the fit keeps them or frees them at its end.
    assert first.peak >= run.batch * run.model.layers[0].n_out * run.model.dtype.itemsize

    # Few steps against many (two epochs), each step measured as well.
    lr = run.optimizer.lr
    few_steps, many_steps = allocations.per_step(lr), allocations.per_step(lr)
    with allocations.measure() as few:
        run.fit(FEW, schedule=few_steps)
    with allocations.measure() as many:
        run.fit(MANY, epochs=2, schedule=many_steps)
    # Jitted code allocates nothing, in any fit; a fit after the first keeps nothing
    # new (its buffers are reused), however many steps it takes.
    nrt = first.nrt_allocs, few.nrt_allocs, many.nrt_allocs
    assert nrt == (0, 0, 0), f"jitted code allocated (first, few, many fits): {nrt}"
    assert (few.numpy_bytes, few.numpy_blocks) == (0, 0), few
    assert (many.numpy_bytes, many.numpy_blocks) == (0, 0), many

    # Each step: no NumPy array made, even one freed at once. Left out: the intervals
    # that hold the work between two epochs (row order, the epoch's metrics), each
    # ending at an epoch's first step, and the fit's first full batch (the views of
    # the batch-sized buffers are made once per fit and batch size).
    per_epoch = MANY + 1
    steps = [s for s in many_steps.steps if s[0] % per_epoch and s[0] != 1]
    assert len(steps) == 2 * per_epoch - 3
    nrt = [(step, allocs) for step, _, allocs in few_steps.steps + steps if allocs]
    assert not nrt, f"jitted code allocated in (step, allocations) {nrt}"
    peaks = [(step, peak) for step, peak, _ in steps if peak >= PEAK_LIMIT]
    assert not peaks, f"a step made a NumPy array: (step, traced peak bytes) {peaks}"


# -- the meter itself: what the monkeypatched np.empty count never saw ---------------

@njit(cache=True)  # in tests/nn/__pycache__ (ignored by git)
def _sum_with_scratch(a):
    scratch = np.empty_like(a)  # an allocation inside a kernel
    scratch[:] = a
    return scratch.sum()


@njit(cache=True)
def _sum_in_place(a, out):
    out[0] = a.sum()


@pytest.fixture(scope="module")
def compiled():
    """The two functions compiled (or loaded) before the test starts tracing."""
    _sum_with_scratch(np.ones(2)), _sum_in_place(np.ones(2), np.zeros(1))


def test_meter_sees_allocations_the_old_count_missed(compiled, allocations):
    a = np.ones(1000)
    out = np.zeros(1)
    with allocations.measure() as kept:
        b = a.astype(np.float32)
        c = a[::2].copy()
    assert kept.numpy_bytes == b.nbytes + c.nbytes and kept.numpy_blocks == 2
    with allocations.measure() as temporary:
        float((a * 2.0 + 1.0).sum())  # a ufunc temporary, freed at once
    assert temporary.numpy_bytes == 0 and temporary.peak >= a.nbytes
    with allocations.measure() as kernel:
        _sum_with_scratch(a)
    assert (kernel.nrt_allocs, kernel.nrt_frees) == (1, 1)
    with allocations.measure() as arguments:
        _sum_in_place(a, out)  # two array arguments: Numba's MemInfos are not counted
    assert (arguments.nrt_allocs, arguments.nrt_frees) == (0, 0)
    assert arguments.peak < PEAK_LIMIT
