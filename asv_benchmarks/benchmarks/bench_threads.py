"""Thread settings: every split of the cores between Numba and BLAS, against the one
``nn.set_num_threads`` chooses.

``track_api_over_best`` is median(epoch time with ``nn.set_num_threads(threads)``) over
the fastest median among every (Numba threads, BLAS threads) pair of at most ``threads``
each, set directly with ``numba.set_num_threads`` and threadpoolctl. 1.0 means the API
picks the best; the target is at most 1.2.
"""
import itertools
import timeit

import numpy as np

from .common import Benchmark, build_mlp, mnist_like, set_threads

N_ROWS = 2048


def _epoch(batch):
    import nn
    X, y = mnist_like(N_ROWS)
    model = build_mlp()
    loss, opt = nn.SoftmaxCrossEntropy(), nn.Adam(lr=1e-3)
    return lambda: model.fit(X, y, loss=loss, optimizer=opt, epochs=1, batch_size=batch)


def _raw_threads(numba_threads, blas_threads):
    import numba
    import threadpoolctl
    numba.set_num_threads(numba_threads)
    threadpoolctl.threadpool_limits(blas_threads, user_api="blas")


def api_over_best(batch, threads, repeat=5):
    """(ratio, {setting: median seconds}) for one epoch of the 784-256-256-10 MLP."""
    set_threads(threads)  # NotImplementedError (asv: skip) without enough cores
    run = _epoch(batch)
    settings = {"api": lambda: set_threads(threads)}
    for a, b in itertools.product(range(1, threads + 1), repeat=2):
        settings[f"numba={a} blas={b}"] = lambda a=a, b=b: _raw_threads(a, b)
    times = {k: [] for k in settings}
    for apply in settings.values():
        apply()
        run()  # warm up under each setting
    for _ in range(repeat):  # interleaved: a noisy moment hits every setting
        for key, apply in settings.items():
            apply()
            times[key].append(timeit.timeit(run, number=1))
    set_threads(threads)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return med["api"] / min(med.values()), med


class ThreadSettings(Benchmark):
    params = [[32, 256], [1, 2]]
    param_names = ["batch", "threads"]
    timeout = 600

    def track_api_over_best(self, batch, threads):
        return api_over_best(batch, threads)[0]

    track_api_over_best.unit = "ratio"
