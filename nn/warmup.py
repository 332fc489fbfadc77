"""Compile (or load from Numba's cache) every kernel a training run can use, up front.

A run compiles only what it uses: a kernel's parallel build only once one of its inputs
reaches ``kernels.PARALLEL_MIN_SIZE`` elements (the API passes ``parallel=None`` below
it, and that compilation leaves the parallel build out). ``warmup`` reaches both sides
of the threshold with every kernel the API calls, so both compilations are done.

Numba compiles a kernel on its first call and, with ``cache=True``, stores the machine
code next to the source. A fresh process with a warm cache loads what it needs in well
under a second; an empty cache (a new install, another CPU, a new Numba) costs the
compile on the first step. ``warmup`` pays it at a time of the user's choosing: after
``pip install``, in a container build, or at service start-up.
"""
import time

import numpy as np

import kernels

from ._validation import check_choice, check_dtype
from .augment import Augment
from .layers import Activation, BatchNorm, Dense, Dropout
from .losses import BinaryCrossEntropy, MeanSquaredError, SoftmaxCrossEntropy
from .model import PRECISIONS, Sequential
from .optimizers import SGD, Adam, Momentum, RMSprop

# 300 rows at batch 256: one batch whose 256 x 256 layer outputs reach the parallel
# kernels' threshold (kernels.PARALLEL_MIN_SIZE = 65536 elements) and one of 44 rows
# for the serial ones; the 256 x 256 weights take the optimizers' parallel path too.
# Predicting _FEW rows keeps inference under the threshold.
_ROWS, _BATCH, _WIDTH, _FEW = 300, 256, 256, 50


def _model(n_out, dtype, precision):
    return Sequential([
        Dense(8, _WIDTH, activation="relu"),
        Dense(_WIDTH, _WIDTH, use_bias=False), BatchNorm(_WIDTH), Activation("relu"),
        Dropout(0.9),
        Dense(_WIDTH, _WIDTH, activation="tanh"), Activation("sigmoid"),
        Dense(_WIDTH, n_out),
    ], dtype=dtype, seed=0, precision=precision)


def warmup(dtypes=("float32",), precisions=None):
    """Compile or load every kernel ``fit``, ``predict`` and ``evaluate`` use.

    Runs a tiny training of a model with every layer kind, with each loss and each
    optimizer, in each dtype, at sizes that reach both the serial and the parallel
    kernels (each kernel on both sides of ``kernels.PARALLEL_MIN_SIZE``: 256 outputs for
    the losses, a one-layer model for the optimizers' serial updates, 16 x 16 images for
    the augmentation). Returns the seconds it took (a few seconds with a warm cache).

    Parameters
    ----------
    dtypes : iterable of "float32" / "float64"
        The dtypes your models use; the default is the library's default.
    precisions : iterable of "fp32" / "bf16", or None
        The ``Sequential`` precisions to compile for ("bf16" with float32 only). None
        (default): "fp32", and "bf16" too where the CPU runs it
        (``kernels.BF16_BACKEND`` is not "none"), which about doubles the time.
    """
    start = time.perf_counter()
    if isinstance(dtypes, (str, np.dtype, type)):
        dtypes = [dtypes]
    dtypes = [check_dtype(d, "warmup") for d in dtypes]
    if precisions is None:
        precisions = ["fp32"] + (["bf16"] if kernels.BF16_BACKEND != "none" else [])
    elif isinstance(precisions, str):
        precisions = [precisions]
    precisions = [check_choice("precisions", p, PRECISIONS, where="warmup")
                  for p in precisions]
    rng = np.random.default_rng(0)
    runs = [(dtype, precision) for dtype in dtypes for precision in precisions
            if precision == "fp32" or dtype == np.float32]
    for dtype, precision in runs:
        X = rng.standard_normal((_ROWS, 8)).astype(dtype)
        labels = rng.integers(0, 3, _ROWS)
        wide = rng.random((_ROWS, _WIDTH)).astype(dtype)
        for loss, y, n_out, y_wide in [(SoftmaxCrossEntropy(), labels, 3, labels),
                                       (BinaryCrossEntropy(), labels % 2, 1, wide),
                                       (MeanSquaredError(), X[:, :2], 2, wide)]:
            for optimizer in (SGD(0.01), Momentum(0.01), RMSprop(0.001), Adam(0.001)):
                model = _model(n_out, dtype, precision)
                model.fit(X, y, loss=loss, optimizer=optimizer, epochs=1,
                          batch_size=_BATCH, l2=1e-3, l1=1e-4)
            model.fit(X, y, epochs=1, batch_size=_BATCH, sample_weight=np.ones(_ROWS))
            model.evaluate(X, y)
            model.predict(X)
            model.predict(X[:_FEW])
            # 256 outputs: the loss kernels and the output's softmax or sigmoid, parallel
            model = Sequential([Dense(8, _WIDTH)], dtype=dtype, seed=0, precision=precision)
            model.fit(X, y_wide, loss=loss, optimizer=SGD(0.01), epochs=1, batch_size=_BATCH)
            model.predict(X)
        for optimizer in (SGD(0.01), Momentum(0.01), RMSprop(0.001), Adam(0.001)):
            # the serial updates
            model = Sequential([Dense(8, 3)], dtype=dtype, seed=0, precision=precision)
            model.fit(X, labels, loss=SoftmaxCrossEntropy(), optimizer=optimizer, epochs=1,
                      batch_size=_BATCH)
        images = rng.standard_normal((_ROWS, _WIDTH)).astype(dtype)  # 16 x 16 pixels
        model = Sequential([Dense(_WIDTH, 3)], dtype=dtype, seed=0, precision=precision)
        model.fit(images, labels, loss=SoftmaxCrossEntropy(), optimizer=SGD(0.01), epochs=1,
                  batch_size=_BATCH,
                  augment=Augment(noise=0.1, image_shape=(16, 16), max_shift=1, flip=True))
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
