"""Loss kernels (value and gradient), softmax and the accuracy counts on the MLP's
output, (batch, 10) logits.

Targets: class labels for ``softmax_cross_entropy`` and ``count_correct``; (batch, 10)
targets in [0, 1] (a multi-label reading of the same output) for
``sigmoid_binary_cross_entropy``, ``mean_squared_error`` and ``count_binary_correct``.
"""
import numpy as np

import kernels

from .common import MLP_WIDTHS, Benchmark, random_array, random_labels

N_OUT = MLP_WIDTHS[-1]


class Losses(Benchmark):
    def prepare(self, batch, dtype, threads):
        shape = (batch, N_OUT)
        self.Z = random_array(shape, dtype, 1)
        self.y = random_labels(batch, N_OUT, seed=2)
        self.Y = (random_array(shape, dtype, 3) > 0).astype(dtype)
        self.dZ = np.ones(shape, dtype)
        self.P = np.ones(shape, dtype)
        self.row_loss = np.ones(batch)

    def time_softmax_cross_entropy(self, batch, dtype, threads):
        kernels.softmax_cross_entropy(self.Z, self.y, self.dZ, self.row_loss)

    def time_sigmoid_binary_cross_entropy(self, batch, dtype, threads):
        kernels.sigmoid_binary_cross_entropy(self.Z, self.Y, self.dZ, self.row_loss)

    def time_mean_squared_error(self, batch, dtype, threads):
        kernels.mean_squared_error(self.Z, self.Y, self.dZ, self.row_loss)

    def time_softmax(self, batch, dtype, threads):
        kernels.softmax(self.Z, self.P)

    def time_count_correct(self, batch, dtype, threads):
        kernels.count_correct(self.Z, self.y)

    def time_count_binary_correct(self, batch, dtype, threads):
        kernels.count_binary_correct(self.Z, self.Y)
