"""In-place parameter updates over one flat buffer.

SGD: w -= lr * dw.
"""
import numpy as np
from numba import njit, prange

from ._reduce import PARALLEL_MIN_SIZE


@njit(cache=True)
def _sgd_serial(params, grads, lr):
    for i in range(params.shape[0]):
        params[i] -= lr * grads[i]


@njit(cache=True, parallel=True)
def _sgd_parallel(params, grads, lr):
    for i in prange(params.shape[0]):
        params[i] -= lr * grads[i]


@njit(cache=True)
def sgd_step(params, grads, lr):
    """Plain gradient descent: params -= lr * grads.

    params (p,) updated; grads (p,) read; lr float > 0 (cast to params' dtype once).
    """
    lr_ = params.dtype.type(lr)
    if params.size >= PARALLEL_MIN_SIZE:
        _sgd_parallel(params, grads, lr_)
    else:
        _sgd_serial(params, grads, lr_)
