"""sgd_step against the float64 reference."""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import kernels
import reference as ref

#: Parameter counts below and above PARALLEL_MIN_SIZE.
SIZES = [pytest.param(1000, id="serial"), pytest.param(70_000, id="parallel")]


def test_sizes_cover_serial_and_parallel():
    assert SIZES[0].values[0] < kernels.PARALLEL_MIN_SIZE <= SIZES[1].values[0]


@pytest.mark.parametrize("lr", [0.1, 0.03])
@pytest.mark.parametrize("size", SIZES)
def test_sgd_step_matches_reference(dtype, rng, tol, size, lr):
    params = rng.standard_normal(size).astype(dtype)
    grads = rng.standard_normal(size).astype(dtype)
    expected = ref.sgd_step(params, grads, lr)
    grads_in = grads.copy()
    kernels.sgd_step(params, grads, lr)
    assert params.dtype == dtype
    assert_allclose(params, expected, **tol(dtype))
    assert_array_equal(grads, grads_in)


def test_sgd_step_float32_uses_float32_lr():
    """lr is cast to float32 once: the update is float32(lr) * g rounded in float32."""
    params = np.zeros(3, np.float32)
    grads = np.array([1.0, -2.0, 3.0], np.float32)
    kernels.sgd_step(params, grads, 0.1)
    assert_array_equal(params, -(np.float32(0.1) * grads))


# --- momentum, RMSprop, Adam ---------------------------------------------------------------
#
# Each kernel runs STEPS updates with fresh random gradients and is compared, after every
# step, with a plain-NumPy transcription of its formula. The transcriptions below are
# local to this file (reference.py holds one function per kernel for single calls).

import math  # noqa: E402

import numba  # noqa: E402

from kernels import optim  # noqa: E402

STEPS = 100

#: Tolerances of the multi-step comparisons, kernel in ``dtype`` vs float64 reference.
#: float64: both sides do the same IEEE operations in the same order, so they agree to a
#: few ulps at most (in practice bit for bit); 1e-12 is the issue's bound.
#: float32: parameters and state are rounded to float32 at every step and each step's
#: rounding feeds the next, so errors add up over the 100 steps: measured worst 6.4e-6
#: absolute on parameters (momentum, 70k elements, |w| up to ~10; RMSprop 2.6e-6, Adam
#: 2.7e-6), and state averages near 0 (cancelling gradients of scale 10) off by ~1e-6
#: absolute. rtol 1e-5 plus atol 1e-5 covers that with a margin and still catches a
#: wrong formula (an error of lr * O(1) >= 1e-4 in a single step).
MULTI_STEP_TOL = {np.float64: dict(rtol=1e-12, atol=1e-12),
                  np.float32: dict(rtol=1e-5, atol=1e-5)}


def momentum_reference(w, g, v, lr, beta):
    v = beta * v + (1 - beta) * g
    return w - lr * v, v


def rmsprop_reference(w, g, s, lr, beta, eps):
    s = beta * s + (1 - beta) * g ** 2
    return w - lr * g / (np.sqrt(s) + eps), s


def adam_reference(w, g, m, v, t, lr, beta1, beta2, eps):
    """The textbook form with m_hat and v_hat (not torch's order): step t from 1."""
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g ** 2
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def adam_scalars(t, beta1, beta2):
    """bc1 and bc2_sqrt as the caller (nn.Adam) computes them for step t."""
    return 1.0 - beta1 ** t, math.sqrt(1.0 - beta2 ** t)


#: name -> (hyperparameters, number of state arrays)
UPDATES = {
    "momentum": (dict(lr=0.05, beta=0.9), 1),
    "rmsprop": (dict(lr=0.01, beta=0.9, eps=1e-8), 1),
    "adam": (dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8), 2),
}


def run_kernel(name, w, g, state, t, hp):
    """One kernel step in place (t from 1)."""
    if name == "momentum":
        kernels.momentum_step(w, g, state[0], hp["lr"], hp["beta"])
    elif name == "rmsprop":
        kernels.rmsprop_step(w, g, state[0], hp["lr"], hp["beta"], hp["eps"])
    else:
        bc1, bc2_sqrt = adam_scalars(t, hp["beta1"], hp["beta2"])
        kernels.adam_step(w, g, state[0], state[1], hp["lr"], hp["beta1"], hp["beta2"],
                          hp["eps"], bc1, bc2_sqrt)


def run_reference(name, w, g, state, t, hp):
    """One reference step: returns (w, state) as new float64 arrays."""
    g = np.asarray(g, np.float64)
    if name == "momentum":
        w, v = momentum_reference(w, g, state[0], **hp)
        return w, [v]
    if name == "rmsprop":
        w, s = rmsprop_reference(w, g, state[0], **hp)
        return w, [s]
    w, m, v = adam_reference(w, g, state[0], state[1], t, **hp)
    return w, [m, v]


@pytest.mark.parametrize("size", SIZES)
def test_momentum_step_matches_reference(dtype, rng, size):
    check_over_100_steps("momentum", dtype, rng, size)


@pytest.mark.parametrize("size", SIZES)
def test_rmsprop_step_matches_reference(dtype, rng, size):
    check_over_100_steps("rmsprop", dtype, rng, size)


@pytest.mark.parametrize("size", SIZES)
def test_adam_step_matches_reference(dtype, rng, size):
    check_over_100_steps("adam", dtype, rng, size)


def check_over_100_steps(name, dtype, rng, size):
    """STEPS updates with fresh gradients; parameters and state compared after each."""
    hp, n_state = UPDATES[name]
    w = rng.standard_normal(size).astype(dtype)
    w0 = w.copy()
    state = [np.zeros(size, dtype) for _ in range(n_state)]
    w_ref = w.astype(np.float64)
    state_ref = [np.zeros(size) for _ in range(n_state)]
    # gradients of varied scale per element (1e-3 to 10), the case RMSprop and Adam are for
    scale = 10.0 ** rng.uniform(-3, 1, size)
    for t in range(1, STEPS + 1):
        g = (scale * rng.standard_normal(size)).astype(dtype)
        g_in = g.copy()
        run_kernel(name, w, g, state, t, hp)
        w_ref, state_ref = run_reference(name, w_ref, g, state_ref, t, hp)
        assert_array_equal(g, g_in)  # read only
        assert_allclose(w, w_ref, **MULTI_STEP_TOL[dtype])
        for got, want in zip(state, state_ref):
            assert_allclose(got, want, **MULTI_STEP_TOL[dtype])
    assert w.dtype == dtype and all(a.dtype == dtype for a in state)
    assert np.abs(w - w0).max() > 10 * hp["lr"]  # the parameters really moved


@pytest.mark.parametrize("name", list(UPDATES))
def test_update_kernels_move_against_the_gradient(name):
    """Sanity on one step from zero state: every element moves opposite to its gradient."""
    hp, n_state = UPDATES[name]
    w = np.zeros(8)
    g = np.array([1.0, -2.0, 3.0, -4.0, 1e-3, -1e-3, 10.0, -10.0])
    run_kernel(name, w, g, [np.zeros(8) for _ in range(n_state)], 1, hp)
    assert (np.sign(w) == -np.sign(g)).all()
    if name == "adam":  # the bias-corrected first step is lr * sign(g) (up to eps)
        assert_allclose(w, -hp["lr"] * np.sign(g), rtol=1e-4)


def test_float32_updates_compute_in_float32():
    """Scalars are cast to float32 once and every operation rounds to float32: the
    result is bit for bit the same operations done with NumPy float32 scalars."""
    f = np.float32
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal(64).astype(f)
    g = rng.standard_normal(64).astype(f)
    v0 = rng.random(64).astype(f)

    w, v = w0.copy(), v0.copy()
    kernels.momentum_step(w, g, v, 0.1, 0.9)
    v_want = f(0.9) * v0 + f(1.0 - 0.9) * g
    assert_array_equal(v, v_want)
    assert_array_equal(w, w0 - f(0.1) * v_want)

    w, s = w0.copy(), v0.copy()
    kernels.rmsprop_step(w, g, s, 0.1, 0.9, 1e-3)
    s_want = f(0.9) * v0 + f(1.0 - 0.9) * (g * g)
    assert_array_equal(s, s_want)
    assert_array_equal(w, w0 - f(0.1) * g / (np.sqrt(s_want) + f(1e-3)))

    lr, b1, b2, eps, t = 0.1, 0.9, 0.999, 1e-3, 3
    bc1, bc2_sqrt = adam_scalars(t, b1, b2)
    m0 = rng.standard_normal(64).astype(f)
    w, m, v = w0.copy(), m0.copy(), v0.copy()
    kernels.adam_step(w, g, m, v, lr, b1, b2, eps, bc1, bc2_sqrt)
    m_want = f(b1) * m0 + f(1.0 - b1) * g
    v_want = f(b2) * v0 + f(1.0 - b2) * (g * g)
    assert_array_equal(m, m_want)
    assert_array_equal(v, v_want)
    # torch's order: (lr/bc1) formed in float64, then p -= step * m / (sqrt(v)/bc2_sqrt + eps)
    assert_array_equal(w, w0 - f(lr / bc1) * m_want / (np.sqrt(v_want) / f(bc2_sqrt) + f(eps)))


def _variant_args(name, arrays, hp, dtype):
    """The argument tuple of the private _serial/_parallel variants (scalars pre-cast)."""
    dt = np.dtype(dtype).type
    w, g, st = arrays
    if name == "momentum":
        return (w, g, st[0], dt(hp["lr"]), dt(hp["beta"]), dt(1.0 - hp["beta"]))
    if name == "rmsprop":
        return (w, g, st[0], dt(hp["lr"]), dt(hp["beta"]), dt(1.0 - hp["beta"]), dt(hp["eps"]))
    bc1, bc2_sqrt = adam_scalars(5, hp["beta1"], hp["beta2"])
    return (w, g, st[0], st[1], dt(hp["beta1"]), dt(1.0 - hp["beta1"]), dt(hp["beta2"]),
            dt(1.0 - hp["beta2"]), dt(hp["eps"]), dt(hp["lr"] / bc1), dt(bc2_sqrt))


def _fresh(name, dtype, size=70_000):
    rng = np.random.default_rng(3)
    n_state = UPDATES[name][1]
    w = rng.standard_normal(size).astype(dtype)
    g = rng.standard_normal(size).astype(dtype)
    state = [rng.random(size).astype(dtype) for _ in range(n_state)]
    return w, g, state


@pytest.mark.parametrize("name", ["sgd", *UPDATES])
def test_update_serial_and_parallel_variants_same_bits(dtype, name):
    """The size switch cannot change results: both variants give the same bytes."""
    if name == "sgd":
        outs = []
        for variant in (optim._sgd_serial, optim._sgd_parallel):
            w, g, _ = _fresh("momentum", dtype)
            variant(w, g, np.dtype(dtype).type(0.1))
            outs.append(w.tobytes())
        assert outs[0] == outs[1]
        return
    hp = UPDATES[name][0]
    outs = []
    for suffix in ("_serial", "_parallel"):
        w, g, state = _fresh(name, dtype)
        getattr(optim, f"_{name}{suffix}")(*_variant_args(name, (w, g, state), hp, dtype))
        outs.append([a.tobytes() for a in (w, *state)])
    assert outs[0] == outs[1]


@pytest.mark.parametrize("name", list(UPDATES))
def test_update_kernels_same_bits_any_thread_count(dtype, name):
    """1 and 2 Numba threads, on a buffer above PARALLEL_MIN_SIZE (parallel variant)."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one Numba thread available (NUMBA_NUM_THREADS < 2)")
    hp = UPDATES[name][0]
    before = numba.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            w, g, state = _fresh(name, dtype)
            assert w.size >= kernels.PARALLEL_MIN_SIZE
            for t in (1, 2, 3):
                run_kernel(name, w, g, state, t, hp)
            outs.append([a.tobytes() for a in (w, *state)])
    finally:
        numba.set_num_threads(before)
    assert outs[0] == outs[1]


@numba.njit  # a user's function, compiled here (no cache)
def _user_loop(w, g, v, m, s, steps):
    """Each update kernel called from user @njit code, Adam's scalars computed here."""
    for t in range(1, steps + 1):
        kernels.momentum_step(w, g, v, 0.01, 0.9)
        kernels.rmsprop_step(w, g, s, 0.01, 0.9, 1e-8)
        kernels.adam_step(w, g, m, v, 0.01, 0.9, 0.999, 1e-8, 1.0 - 0.9 ** t,
                          math.sqrt(1.0 - 0.999 ** t))
        kernels.sgd_step(w, g, 0.01)


@pytest.mark.parametrize("size", SIZES)
def test_update_kernels_callable_from_user_njit(dtype, size):
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(size).astype(dtype), rng.standard_normal(size).astype(dtype)]
    arrays += [np.zeros(size, dtype) for _ in range(3)]
    python = [a.copy() for a in arrays]
    w0 = arrays[0].copy()
    _user_loop(*arrays, 3)
    w, g, v, m, s = python
    for t in range(1, 4):  # the same calls from Python
        kernels.momentum_step(w, g, v, 0.01, 0.9)
        kernels.rmsprop_step(w, g, s, 0.01, 0.9, 1e-8)
        kernels.adam_step(w, g, m, v, 0.01, 0.9, 0.999, 1e-8, *adam_scalars(t, 0.9, 0.999))
        kernels.sgd_step(w, g, 0.01)
    for got, want in zip(arrays, python):
        assert got.tobytes() == want.tobytes()
    assert not np.array_equal(arrays[0], w0)
