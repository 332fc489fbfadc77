"""In-place parameter updates over one flat buffer.

Each update reads the gradient once and rewrites the parameters and the optimizer's
state in a single pass over the elements:

- SGD:      w -= lr * dw
- momentum: v = beta*v + (1-beta)*dw;  w -= lr * v        (the course's average, not torch's)
- RMSprop:  s = beta*s + (1-beta)*dw**2;  w -= lr * dw / (sqrt(s) + eps)
- Adam:     m = b1*m + (1-b1)*dw;  v = b2*v + (1-b2)*dw**2;
            w -= (lr/bc1) * m / (sqrt(v)/bc2_sqrt + eps),  bc1 = 1-b1**t, bc2_sqrt = sqrt(1-b2**t)

All arrays are 1-D, C-contiguous, of one dtype (float32 or float64), and of the same
length; scalars are Python floats, cast once to the arrays' dtype so the elementwise
math stays in that dtype (a float32 element times a float64 scalar would compute in
float64). The step-dependent scalars of Adam come from the caller (``nn.Adam``), which
computes them once per step. Each public kernel takes its parallel build from
``PARALLEL_MIN_SIZE`` elements; an element's result does not depend on which thread
computes it, so the bytes are the same for any thread count.
"""
import numpy as np
from numba import njit, prange

from ._parallel import PARALLEL_MIN_SIZE, serial_and_parallel

# The unit of work of each update is one inlined element function, in one loop that
# serial_and_parallel builds twice (kernels._parallel).
#
# RMSprop and Adam divide, so they compile with error_model="numpy": IEEE division
# instead of Python's ZeroDivisionError check, whose branch kept LLVM from vectorizing
# the loop (scalar vsqrtss/vdivss; with it, 256-bit vsqrtps/vdivps). The same Adam loop
# ran 4-5x faster that way on 50k to 1M float32 elements. The denominators are
# >= eps > 0 for validated arguments, so no result changes.


# --- SGD -------------------------------------------------------------------------------

def _sgd(params, grads, lr):
    for i in prange(params.shape[0]):
        params[i] -= lr * grads[i]


_sgd_serial, _sgd_parallel = serial_and_parallel(_sgd)


@njit(cache=True)
def sgd_step(params, grads, lr, parallel=True):
    """Plain gradient descent: params -= lr * grads.

    params (p,) updated; grads (p,) read; lr float > 0 (cast to params' dtype once).
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.
    """
    lr_ = params.dtype.type(lr)
    if parallel is not None:
        if parallel and params.size >= PARALLEL_MIN_SIZE:
            _sgd_parallel(params, grads, lr_)
            return
    _sgd_serial(params, grads, lr_)


# --- momentum --------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _momentum_elem(params, grads, v, i, lr, beta, one_minus_beta):
    vi = beta * v[i] + one_minus_beta * grads[i]
    v[i] = vi
    params[i] -= lr * vi


def _momentum(params, grads, v, lr, beta, one_minus_beta):
    for i in prange(params.shape[0]):
        _momentum_elem(params, grads, v, i, lr, beta, one_minus_beta)


_momentum_serial, _momentum_parallel = serial_and_parallel(_momentum)


@njit(cache=True)
def momentum_step(params, grads, v, lr, beta, parallel=True):
    """Gradient descent with momentum (an exponentially weighted average of gradients).

    v = beta*v + (1-beta)*grads;  params -= lr * v

    params (p,) updated; grads (p,) read; v (p,) updated (the velocity, zeros at the
    start); lr float > 0; beta float in [0, 1). Scalars are cast to params' dtype once
    (``1-beta`` is formed in float64 first).
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.

    Notes: this is the course's average, so ``lr`` acts on a gradient-sized step.
    ``torch.optim.SGD(momentum=mu)`` keeps ``v = mu*v + g`` instead (1/(1-beta) times
    larger). Parallel over elements from PARALLEL_MIN_SIZE; same bits for any thread count.
    """
    dt = params.dtype.type
    if parallel is not None:
        if parallel and params.size >= PARALLEL_MIN_SIZE:
            _momentum_parallel(params, grads, v, dt(lr), dt(beta), dt(1.0 - beta))
            return
    _momentum_serial(params, grads, v, dt(lr), dt(beta), dt(1.0 - beta))


# --- RMSprop ---------------------------------------------------------------------------

@njit(cache=True, inline="always", error_model="numpy")
def _rmsprop_elem(params, grads, s, i, lr, beta, one_minus_beta, eps):
    g = grads[i]
    si = beta * s[i] + one_minus_beta * (g * g)
    s[i] = si
    params[i] -= lr * g / (np.sqrt(si) + eps)


def _rmsprop(params, grads, s, lr, beta, one_minus_beta, eps):
    for i in prange(params.shape[0]):
        _rmsprop_elem(params, grads, s, i, lr, beta, one_minus_beta, eps)


_rmsprop_serial, _rmsprop_parallel = serial_and_parallel(_rmsprop, error_model="numpy")


@njit(cache=True, error_model="numpy")
def rmsprop_step(params, grads, s, lr, beta, eps, parallel=True):
    """RMSprop: an exponentially weighted average of squared gradients scales the step.

    s = beta*s + (1-beta)*grads**2;  params -= lr * grads / (sqrt(s) + eps)

    params (p,) updated; grads (p,) read; s (p,) updated (zeros at the start); lr float
    > 0; beta float in [0, 1) (torch's ``alpha``); eps float > 0, added outside the square
    root as torch and Keras do (the notes write it inside). Scalars are cast to params'
    dtype once.
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.

    Notes: parallel over elements from PARALLEL_MIN_SIZE; same bits for any thread count.
    """
    dt = params.dtype.type
    if parallel is not None:
        if parallel and params.size >= PARALLEL_MIN_SIZE:
            _rmsprop_parallel(params, grads, s, dt(lr), dt(beta), dt(1.0 - beta), dt(eps))
            return
    _rmsprop_serial(params, grads, s, dt(lr), dt(beta), dt(1.0 - beta), dt(eps))


# --- Adam ------------------------------------------------------------------------------

@njit(cache=True, inline="always", error_model="numpy")
def _adam_elem(params, grads, m, v, i, beta1, one_minus_beta1, beta2, one_minus_beta2,
               eps, step_size, bc2_sqrt):
    g = grads[i]
    mi = beta1 * m[i] + one_minus_beta1 * g
    vi = beta2 * v[i] + one_minus_beta2 * (g * g)
    m[i] = mi
    v[i] = vi
    # torch's order: denom = sqrt(v)/bc2_sqrt + eps; p -= (lr/bc1) * m / denom
    params[i] -= step_size * mi / (np.sqrt(vi) / bc2_sqrt + eps)


def _adam(params, grads, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
          step_size, bc2_sqrt):
    for i in prange(params.shape[0]):
        _adam_elem(params, grads, m, v, i, beta1, one_minus_beta1, beta2, one_minus_beta2,
                   eps, step_size, bc2_sqrt)


_adam_serial, _adam_parallel = serial_and_parallel(_adam, error_model="numpy")


@njit(cache=True, error_model="numpy")
def adam_step(params, grads, m, v, lr, beta1, beta2, eps, bc1, bc2_sqrt, parallel=True):
    """Adam: momentum and RMSprop averages with bias correction, one pass.

    m = beta1*m + (1-beta1)*grads;  v = beta2*v + (1-beta2)*grads**2
    params -= lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m/bc1, v_hat = v/bc2_sqrt**2,
    computed in torch's order: params -= (lr/bc1) * m / (sqrt(v)/bc2_sqrt + eps).

    params (p,) updated; grads (p,) read; m, v (p,) updated (first and second moment
    averages, zeros at the start); lr float > 0; beta1, beta2 floats in [0, 1); eps
    float > 0; bc1 = 1 - beta1**t and bc2_sqrt = sqrt(1 - beta2**t) for step t = 1, 2,
    ..., computed once per step by the caller. ``lr/bc1`` is formed in float64 and,
    like every scalar, cast to params' dtype once (torch does the same).
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.

    Notes: parallel over elements from PARALLEL_MIN_SIZE; same bits for any thread count.
    """
    dt = params.dtype.type
    if parallel is not None:
        if parallel and params.size >= PARALLEL_MIN_SIZE:
            _adam_parallel(params, grads, m, v, dt(beta1), dt(1.0 - beta1), dt(beta2),
                           dt(1.0 - beta2), dt(eps), dt(lr / bc1), dt(bc2_sqrt))
            return
    _adam_serial(params, grads, m, v, dt(beta1), dt(1.0 - beta1), dt(beta2),
                 dt(1.0 - beta2), dt(eps), dt(lr / bc1), dt(bc2_sqrt))
