"""Dropout: forward and backward on a hidden layer's (batch, 256), the counter hash that
draws its masks, and the forward on (4096, 1024) against a copy and PyTorch.

``Dropout``: ``dropout_forward`` and ``dropout_backward`` (keep_prob 0.8) at the MLP's
batch sizes, both dtypes. ``UniformFromCounter``: ``uniform_from_counter`` called from a
jitted loop filling (batch, 256) draws, parallel over rows as in ``dropout_forward`` (the
hash alone, without the mask and the scaling).

``DropoutForward`` on (4096, 1024), float32: ``track_bandwidth_fraction`` is the achieved
bandwidth as a fraction of a NumPy copy in the same run; ours reads X and writes out
(float32) and the bool mask: 9 * n * d bytes against the copy's 8 * n * d.
``track_speedup_vs_torch``: median(torch.nn.Dropout(p=1-keep_prob) in training mode) /
median(ours).
"""
import timeit

import numpy as np
from numba import njit, prange

import kernels
from kernels import uniform_from_counter

from .common import BATCHES, HIDDEN, THREADS, Benchmark, import_torch, random_array

SHAPE = (4096, 1024)
KEEP_PROB = 0.8


def _median(fn, repeat=15, number=5):
    return float(np.median(timeit.repeat(fn, number=number, repeat=repeat))) / number


class DropoutForward(Benchmark):
    params = [[1, 2]]
    param_names = ["threads"]

    def prepare(self, threads):
        import kernels
        self.X = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
        self.out = np.ones_like(self.X)
        self.mask = np.ones(SHAPE, np.bool_)
        self.copy_dst = np.ones_like(self.X)
        self.k = kernels
        self.step = 0

    def run(self):
        self.step += 1
        self.k.dropout_forward(self.X, KEEP_PROB, 1234, self.step, self.mask, self.out)

    def time_dropout_forward(self, threads):
        self.run()

    def track_bandwidth_fraction(self, threads):
        t_ours = _median(self.run)
        t_copy = _median(lambda: np.copyto(self.copy_dst, self.X))
        moved = self.X.nbytes + self.out.nbytes + self.mask.nbytes
        return (moved / t_ours) / (2 * self.X.nbytes / t_copy)
    track_bandwidth_fraction.unit = "ratio"

    def track_speedup_vs_torch(self, threads):
        torch = import_torch()
        torch.set_num_threads(threads)
        drop = torch.nn.Dropout(p=1.0 - KEEP_PROB).train()
        X = torch.from_numpy(self.X)

        def theirs():
            drop(X)
        theirs()
        return _median(theirs) / _median(self.run)
    track_speedup_vs_torch.unit = "ratio"


class Dropout(Benchmark):
    def prepare(self, batch, dtype, threads):
        shape = (batch, HIDDEN)
        self.X = random_array(shape, dtype, 1)
        self.dA = random_array(shape, dtype, 2)
        self.out = np.ones(shape, dtype)
        self.dX = np.ones(shape, dtype)
        self.mask = np.ones(shape, np.bool_)
        self.step = 0

    def time_forward(self, batch, dtype, threads):
        self.step += 1  # a new mask each call, as in training
        kernels.dropout_forward(self.X, KEEP_PROB, 1234, self.step, self.mask, self.out)

    def time_backward(self, batch, dtype, threads):
        kernels.dropout_backward(self.dA, self.mask, KEEP_PROB, self.dX)


@njit(cache=True, inline="always")
def _fill_row(seed, step, i, row):
    d = row.shape[0]
    for j in range(d):
        row[j] = uniform_from_counter(seed, step, i * d + j)


@njit(cache=True)
def _fill_serial(seed, step, out):
    for i in range(out.shape[0]):
        _fill_row(seed, step, i, out[i])


@njit(cache=True, parallel=True)
def _fill_parallel(seed, step, out):
    for i in prange(out.shape[0]):
        _fill_row(seed, step, i, out[i])


def fill_uniform(seed, step, out):
    """out[i, j] = uniform_from_counter(seed, step, i * d + j); parallel over rows from
    ``kernels.PARALLEL_MIN_SIZE`` elements, as ``dropout_forward``."""
    if out.size >= kernels.PARALLEL_MIN_SIZE:
        _fill_parallel(seed, step, out)
    else:
        _fill_serial(seed, step, out)


class UniformFromCounter(Benchmark):
    """(batch, 256) float64 draws of the counter hash, from jitted code."""
    params = [BATCHES, THREADS]
    param_names = ["batch", "threads"]

    def prepare(self, batch, threads):
        self.out = np.ones((batch, HIDDEN))
        self.step = 0

    def time_fill(self, batch, threads):
        self.step += 1
        fill_uniform(1234, self.step, self.out)
