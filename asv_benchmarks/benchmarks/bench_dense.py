"""The dense layer's kernels on the MLP's three layer shapes (784x256, 256x256, 256x10).

- ``Gemm``: ``kernels.blas.gemm`` in the three forms a dense layer calls: the forward
  ``Z = X @ W`` (``nn``), the weight gradient ``dW = X.T @ dZ`` (``tn``) and the input
  gradient ``dX = dZ @ W.T`` (``nt``).
- ``DenseForward``: ``dense_forward`` (GEMM, bias and the layer's activation).
- ``DenseBackward``: ``dense_backward`` (activation derivative, bias sum, dW and, except
  for the first layer, whose dX training skips, dX), without penalties.
- ``WeightPenalty``: the L2 + L1 cost term over one weight matrix.
"""
import numpy as np

import kernels
from kernels.blas import gemm

from .common import (
    BATCHES, DTYPES, LAYERS, THREADS, Benchmark, dtype_scalar, random_array,
)

LAYER_NAMES = list(LAYERS)


class Gemm(Benchmark):
    params = [LAYER_NAMES, BATCHES, DTYPES, THREADS]
    param_names = ["layer", "batch", "dtype", "threads"]

    def prepare(self, layer, batch, dtype, threads):
        k, m, _ = LAYERS[layer]
        self.X = random_array((batch, k), dtype, 1)
        self.W = random_array((k, m), dtype, 2)
        self.dZ = random_array((batch, m), dtype, 3)
        self.Z = np.ones((batch, m), dtype)
        self.dW = np.ones((k, m), dtype)
        self.dX = np.ones((batch, k), dtype)

    def time_nn_forward(self, layer, batch, dtype, threads):
        gemm(self.X, self.W, self.Z, False, False, 1.0, 0.0)

    def time_tn_weight_grad(self, layer, batch, dtype, threads):
        gemm(self.X, self.dZ, self.dW, True, False, 1.0, 0.0)

    def time_nt_input_grad(self, layer, batch, dtype, threads):
        gemm(self.dZ, self.W, self.dX, False, True, 1.0, 0.0)


def dense_arrays(layer, batch, dtype):
    """Inputs, parameters and output buffers of one dense layer, forward run once."""
    k, m, act = LAYERS[layer]
    a = {"act": kernels.ACTIVATION_CODES[act]}
    a["X"] = random_array((batch, k), dtype, 1)
    a["W"] = random_array((k, m), dtype, 2) * dtype_scalar(dtype, np.sqrt(2.0 / k))
    a["b"] = random_array((m,), dtype, 4) * dtype_scalar(dtype, 0.1)
    a["Z"] = np.ones((batch, m), dtype)
    a["A"] = a["Z"] if a["act"] == kernels.ACT_IDENTITY else np.ones((batch, m), dtype)
    kernels.dense_forward(a["X"], a["W"], a["b"], a["act"], a["Z"], a["A"])
    return a


class DenseForward(Benchmark):
    params = [LAYER_NAMES, BATCHES, DTYPES, THREADS]
    param_names = ["layer", "batch", "dtype", "threads"]

    def prepare(self, layer, batch, dtype, threads):
        self.a = dense_arrays(layer, batch, dtype)  # runs the forward once

    def time_forward(self, layer, batch, dtype, threads):
        a = self.a
        kernels.dense_forward(a["X"], a["W"], a["b"], a["act"], a["Z"], a["A"])


class DenseBackward(Benchmark):
    params = [LAYER_NAMES, BATCHES, DTYPES, THREADS]
    param_names = ["layer", "batch", "dtype", "threads"]

    def prepare(self, layer, batch, dtype, threads):
        a = self.a = dense_arrays(layer, batch, dtype)
        k, m, _ = LAYERS[layer]
        a["dA"] = random_array((batch, m), dtype, 5)
        a["dZ"] = np.ones((batch, m), dtype)
        a["dW"] = np.ones((k, m), dtype)
        a["db"] = np.ones(m, dtype)
        # The first layer's dX is skipped in training (a (0, 0) array says so).
        first = layer == LAYER_NAMES[0]
        a["dX"] = np.zeros((0, 0), dtype) if first else np.ones((batch, k), dtype)
        a["scratch"] = np.ones((kernels.n_blocks(batch), m))

    def time_backward(self, layer, batch, dtype, threads):
        a = self.a
        kernels.dense_backward(a["X"], a["W"], a["Z"], a["A"], a["dA"], a["act"], 0.0, 0.0,
                               a["dZ"], a["dW"], a["db"], a["dX"], a["scratch"])


class WeightPenalty(Benchmark):
    """``weight_penalty(W, l2, l1, m)`` over one layer's weights (no batch dimension)."""
    params = [LAYER_NAMES, DTYPES, THREADS]
    param_names = ["layer", "dtype", "threads"]

    def prepare(self, layer, dtype, threads):
        k, m, _ = LAYERS[layer]
        self.W = random_array((k, m), dtype, 2)

    def time_weight_penalty(self, layer, dtype, threads):
        kernels.weight_penalty(self.W, 1e-3, 1e-4, 64)
