"""Elementwise activations, forward and backward, on a hidden layer's (batch, 256).

``activation_forward(Z, act, A)`` and ``activation_backward(Z, A, dA, act, dZ)`` for each
activation code; both take their parallel variant from ``kernels.PARALLEL_MIN_SIZE``
elements (batch 256 and up here).
"""
import numpy as np

import kernels

from .common import BATCHES, DTYPES, HIDDEN, THREADS, Benchmark, random_array

ACTIVATIONS = ["identity", "relu", "leaky_relu", "tanh", "sigmoid"]


class Activation(Benchmark):
    params = [ACTIVATIONS, BATCHES, DTYPES, THREADS]
    param_names = ["activation", "batch", "dtype", "threads"]

    def prepare(self, activation, batch, dtype, threads):
        self.act = kernels.ACTIVATION_CODES[activation]
        shape = (batch, HIDDEN)
        self.Z = random_array(shape, dtype, 1)
        self.dA = random_array(shape, dtype, 2)
        self.A = np.ones(shape, dtype)
        self.dZ = np.ones(shape, dtype)

    def time_forward(self, activation, batch, dtype, threads):
        kernels.activation_forward(self.Z, self.act, self.A)

    def time_backward(self, activation, batch, dtype, threads):
        kernels.activation_backward(self.Z, self.A, self.dA, self.act, self.dZ)
