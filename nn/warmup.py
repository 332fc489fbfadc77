"""Compile (or load from Numba's cache) every kernel a training run can use, up front.

Numba compiles a kernel on its first call and, with ``cache=True``, stores the machine
code next to the source. A fresh process with a warm cache loads what it needs in well
under a second; an empty cache (a new install, another CPU, a new Numba) costs the
compile on the first step. ``warmup`` pays it at a time of the user's choosing: after
``pip install``, in a container build, or at service start-up.
"""
import time

import numpy as np

from ._validation import check_dtype
from .layers import Activation, BatchNorm, Dense, Dropout
from .losses import BinaryCrossEntropy, MeanSquaredError, SoftmaxCrossEntropy
from .model import Sequential
from .optimizers import SGD, Adam, Momentum, RMSprop

# 300 rows at batch 256: one batch whose 256 x 256 layer outputs reach the parallel
# kernels' threshold (kernels.PARALLEL_MIN_SIZE = 65536 elements) and one of 44 rows
# for the serial ones; the 256 x 256 weights take the optimizers' parallel path too.
_ROWS, _BATCH, _WIDTH = 300, 256, 256


def _model(n_out, dtype):
    return Sequential([
        Dense(8, _WIDTH, activation="relu"),
        Dense(_WIDTH, _WIDTH, use_bias=False), BatchNorm(_WIDTH), Activation("relu"),
        Dropout(0.9),
        Dense(_WIDTH, _WIDTH, activation="tanh"), Activation("sigmoid"),
        Dense(_WIDTH, n_out),
    ], dtype=dtype, seed=0)


def warmup(dtypes=("float32",)):
    """Compile or load every kernel ``fit``, ``predict`` and ``evaluate`` use.

    Runs a tiny training of a model with every layer kind, with each loss and each
    optimizer, in each dtype, at sizes that reach both the serial and the parallel
    kernels. Returns the seconds it took (about 1 s with a warm cache).

    Parameters
    ----------
    dtypes : iterable of "float32" / "float64"
        The dtypes your models use; the default is the library's default.
    """
    start = time.perf_counter()
    if isinstance(dtypes, (str, np.dtype, type)):
        dtypes = [dtypes]
    dtypes = [check_dtype(d, "warmup") for d in dtypes]
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        X = rng.standard_normal((_ROWS, 8)).astype(dtype)
        labels = rng.integers(0, 3, _ROWS)
        for loss, y, n_out in [(SoftmaxCrossEntropy(), labels, 3),
                               (BinaryCrossEntropy(), labels % 2, 1),
                               (MeanSquaredError(), X[:, :2], 2)]:
            for optimizer in (SGD(0.01), Momentum(0.01), RMSprop(0.001), Adam(0.001)):
                model = _model(n_out, dtype)
                model.fit(X, y, loss=loss, optimizer=optimizer, epochs=1,
                          batch_size=_BATCH, l2=1e-3, l1=1e-4)
            model.fit(X, y, epochs=1, batch_size=_BATCH, sample_weight=np.ones(_ROWS))
            model.evaluate(X, y)
            model.predict(X)
    return time.perf_counter() - start


class CompileTimer:
    """``with CompileTimer() as timer: ...`` adds to ``timer.seconds`` the wall time
    Numba spends compiling inside the block (its ``numba:compile`` events, outermost
    only: a kernel compiling its callees counts once). Loading a kernel from Numba's
    cache is not a compilation and is not counted."""

    def __init__(self):
        self.seconds = 0.0

    def _add(self, seconds):
        self.seconds += seconds

    def __enter__(self):
        from numba.core import event
        self._timer = event.install_timer("numba:compile", self._add)
        self._timer.__enter__()
        return self

    def __exit__(self, *exc):
        return self._timer.__exit__(*exc)
