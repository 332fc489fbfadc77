"""Activations selected by a small integer code, so one compiled kernel serves all.

Codes: ``ACT_IDENTITY``, ``ACT_RELU``, ``ACT_LEAKY_RELU`` (slope ``LEAKY_RELU_SLOPE``
for negative inputs), ``ACT_TANH``, ``ACT_SIGMOID``. The derivative is computed from
the pre-activation ``z`` and the activation ``a`` together, whichever is cheaper.
"""
import math

from numba import njit, prange

from ._parallel import PARALLEL_MIN_SIZE, serial_and_parallel

ACT_IDENTITY = 0
ACT_RELU = 1
ACT_LEAKY_RELU = 2
ACT_TANH = 3
ACT_SIGMOID = 4

#: Slope of leaky ReLU for negative inputs (PyTorch's and Keras's default).
LEAKY_RELU_SLOPE = 0.01

#: Public name -> code; the API validates names against this table.
ACTIVATION_CODES = {
    "identity": ACT_IDENTITY,
    "linear": ACT_IDENTITY,
    "relu": ACT_RELU,
    "leaky_relu": ACT_LEAKY_RELU,
    "tanh": ACT_TANH,
    "sigmoid": ACT_SIGMOID,
}


@njit(cache=True, inline="always")
def activate(z, act_code):
    """act(z) for one element; computed in z's dtype."""
    one = type(z)(1.0)
    if act_code == ACT_RELU:
        return z if z > 0 else type(z)(0.0)
    if act_code == ACT_LEAKY_RELU:
        return z if z > 0 else type(z)(LEAKY_RELU_SLOPE) * z
    if act_code == ACT_TANH:
        return type(z)(math.tanh(z))
    if act_code == ACT_SIGMOID:
        if z >= 0:
            return one / (one + type(z)(math.exp(-z)))
        e = type(z)(math.exp(z))
        return e / (one + e)
    return z


@njit(cache=True, inline="always")
def activate_grad(z, a, act_code):
    """d act(z) / dz for one element, from z and a = act(z)."""
    one = type(z)(1.0)
    if act_code == ACT_RELU:
        return one if z > 0 else type(z)(0.0)
    if act_code == ACT_LEAKY_RELU:
        return one if z > 0 else type(z)(LEAKY_RELU_SLOPE)
    if act_code == ACT_TANH:
        return one - a * a
    if act_code == ACT_SIGMOID:
        return a * (one - a)
    return one


@njit(cache=True, inline="always")
def _forward_row(z_row, act_code, a_row):
    for j in range(z_row.shape[0]):
        a_row[j] = activate(z_row[j], act_code)


@njit(cache=True, inline="always")
def _backward_row(z_row, a_row, da_row, act_code, dz_row):
    for j in range(z_row.shape[0]):
        dz_row[j] = da_row[j] * activate_grad(z_row[j], a_row[j], act_code)


def _forward(Z, act_code, A):
    for i in prange(Z.shape[0]):
        _forward_row(Z[i], act_code, A[i])


_forward_serial, _forward_parallel = serial_and_parallel(_forward)


def _backward(Z, A, dA, act_code, dZ):
    for i in prange(Z.shape[0]):
        _backward_row(Z[i], A[i], dA[i], act_code, dZ[i])


_backward_serial, _backward_parallel = serial_and_parallel(_backward)


@njit(cache=True)
def activation_forward(Z, act_code, A, parallel=True):
    """A = act(Z) elementwise.

    Z (n, d) read; act_code int; A (n, d) written (may be Z itself).
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.
    Notes: parallel over rows from ``PARALLEL_MIN_SIZE`` elements; no reductions, so
    the same bits for any thread count.
    """
    if parallel is not None:
        if parallel and Z.size >= PARALLEL_MIN_SIZE:
            _forward_parallel(Z, act_code, A)
            return
    _forward_serial(Z, act_code, A)


@njit(cache=True)
def activation_backward(Z, A, dA, act_code, dZ, parallel=True):
    """dZ = dA * act'(Z), with act'(Z) taken from Z and A = act(Z).

    Z, A, dA (n, d) read; act_code int; dZ (n, d) written (may be dA itself).
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.
    """
    if parallel is not None:
        if parallel and Z.size >= PARALLEL_MIN_SIZE:
            _backward_parallel(Z, A, dA, act_code, dZ)
            return
    _backward_serial(Z, A, dA, act_code, dZ)
