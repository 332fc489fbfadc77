"""The fixed-block reductions behind every batch sum.

- ``column_sums(X, scratch, out)`` on a hidden layer's (batch, 256), as for db.
- ``ordered_sum(values)`` on a (batch,) float64 vector, as for the per-row losses.
"""
import numpy as np

import kernels

from .common import BATCHES, HIDDEN, THREADS, Benchmark, random_array


class ColumnSums(Benchmark):
    def prepare(self, batch, dtype, threads):
        self.X = random_array((batch, HIDDEN), dtype, 1)
        self.scratch = np.ones((kernels.n_blocks(batch), HIDDEN))
        self.out = np.ones(HIDDEN, dtype)

    def time_column_sums(self, batch, dtype, threads):
        kernels.column_sums(self.X, self.scratch, self.out)


class OrderedSum(Benchmark):
    """float64 only: the kernels sum per-row losses, which are float64 in both dtypes."""
    params = [BATCHES, THREADS]
    param_names = ["batch", "threads"]

    def prepare(self, batch, threads):
        self.values = random_array((batch,), "float64", 1)

    def time_ordered_sum(self, batch, threads):
        kernels.ordered_sum(self.values)
