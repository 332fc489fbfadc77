"""Inference on the 784-256-256-10 MLP: chunked ``predict``, its memory, and serving.

- ``Predict.time_predict``: ``predict`` over 100,000 float32 rows (softmax output) at the
  default chunk size and at explicit ones, so a chunk size that costs speed shows here.
- ``PredictMemory.track_extra_mib``: the traced (tracemalloc) peak a ``predict`` over
  500,000 x 784 float64 rows with a standardizer needs beyond its result, in MiB; the
  issue's bound is 100. ``track_held_mib`` is what stays allocated after it returns.
- ``Serve.time_four_threads``: four Python threads sharing one model, each predicting
  its own 1000-row requests (40 in all), against ``time_one_thread`` doing the same 40
  requests alone; thread-safe inference must not serialize more than the GIL does.
"""
import gc
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import nn

from .common import THREADS, Benchmark, build_mlp, mnist_like


def _served_model(dtype="float32"):
    model = build_mlp(dtype)
    model.loss = nn.SoftmaxCrossEntropy()
    return model


class Predict(Benchmark):
    params = [[None, 1024, 8192], THREADS]
    param_names = ["batch_size", "threads"]

    def prepare(self, batch_size, threads):
        self.model = _served_model()
        self.X, _ = mnist_like(100_000)

    def warm_up(self, batch_size, threads):
        self.model.predict(self.X[:2048], batch_size=batch_size)  # load or compile

    def time_predict(self, batch_size, threads):
        self.model.predict(self.X, batch_size=batch_size)


class PredictMemory:
    timeout = 300
    unit = "MiB"

    def setup(self):
        self.model = _served_model()
        rng = np.random.default_rng(0)
        self.model.standardizer = nn.data.Standardizer().fit(
            rng.standard_normal((100, 784)))
        self.X = rng.standard_normal((500_000, 784))        # float64, 3.1 GB
        self.model.predict(self.X[:100])

    def _traced(self):
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            out = self.model.predict(self.X)
            peak = tracemalloc.get_traced_memory()[1]
            result = out.nbytes
            del out
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        return (peak - before - result) / 2**20, held / 2**20

    def track_extra_mib(self):
        return self._traced()[0]

    def track_held_mib(self):
        return self._traced()[1]


class Serve(Benchmark):
    params = [THREADS]
    param_names = ["threads"]

    def prepare(self, threads):
        self.model = _served_model()
        X, _ = mnist_like(40_000)
        self.requests = [X[i:i + 1000] for i in range(0, 40_000, 1000)]

    def warm_up(self, threads):
        self.model.predict(self.requests[0])
        self.pool = ThreadPoolExecutor(4)
        list(self.pool.map(self.model.predict, self.requests[:4]))  # start the threads

    def teardown(self, threads):
        self.pool.shutdown()

    def time_one_thread(self, threads):
        for r in self.requests:
            self.model.predict(r)

    def time_four_threads(self, threads):
        list(self.pool.map(self.model.predict, self.requests))
