"""The fixed-block reductions behind every batch sum.

- ``column_sums(X, scratch, out)`` on a hidden layer's (batch, 256), as for db.
- ``ordered_sum(values)`` on a (batch,) float64 vector, as for the per-row losses.
"""
import numpy as np

import kernels

from .common import BATCHES, DTYPES, HIDDEN, THREADS, random_array, set_threads


class ColumnSums:
    params = [BATCHES, DTYPES, THREADS]
    param_names = ["batch", "dtype", "threads"]

    def setup(self, batch, dtype, threads):
        set_threads(threads)
        self.X = random_array((batch, HIDDEN), dtype, 1)
        self.scratch = np.ones((kernels.n_blocks(batch), HIDDEN))
        self.out = np.ones(HIDDEN, dtype)
        self.time_column_sums(batch, dtype, threads)  # load or compile: never timed

    def time_column_sums(self, batch, dtype, threads):
        kernels.column_sums(self.X, self.scratch, self.out)


class OrderedSum:
    """float64 only: the kernels sum per-row losses, which are float64 in both dtypes."""
    params = [BATCHES, THREADS]
    param_names = ["batch", "threads"]

    def setup(self, batch, threads):
        set_threads(threads)
        self.values = random_array((batch,), "float64", 1)
        self.time_ordered_sum(batch, threads)  # load or compile: never timed

    def time_ordered_sum(self, batch, threads):
        kernels.ordered_sum(self.values)
