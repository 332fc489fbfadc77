"""batchnorm_forward_train, batchnorm_forward_infer and batchnorm_backward against the
float64 reference (the backward reference goes through mean and variance by the
textbook chain rule, not the kernel's simplified form); the same bits for 1 and 2
threads and for both variants with every activation path; no allocation per call."""
import numba
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import kernels
import reference as ref
from kernels import batchnorm

#: (70, 20) runs the serial variant, (1101, 64) the parallel one (70464 elements). Both
#: end in a partial row block whose row count is not a multiple of 4 (70 = 17 * 4 + 2,
#: 1101 = 8 * 128 + 77), so the grouped loops' remainder rows run too.
SHAPES = [pytest.param((70, 20), id="serial"), pytest.param((1101, 64), id="parallel")]
ACTS = [pytest.param(kernels.ACT_IDENTITY, id="identity"),
        pytest.param(kernels.ACT_RELU, id="relu"),
        pytest.param(kernels.ACT_TANH, id="tanh")]
EPS = 1e-5
MOMENTUM = 0.9

#: Outputs are O(1). float32: the kernel normalizes in float32 (a few ulps per element);
#: dgamma/dbeta add float32 sums of 4 terms (each term and each sum rounded once)
#: into float64 (error ~ sqrt(n) * eps32 per unit term): 1101 rows give ~1e-5.
#: float64: a few ulps, and the reference's different (chain-rule) formula for dZ costs
#: a few more.
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
TOL_SUM = {np.float32: dict(rtol=1e-5, atol=5e-5), np.float64: dict(rtol=1e-10, atol=1e-11)}


def inputs(rng, shape, dtype):
    n, d = shape
    Z = (2.0 * rng.standard_normal(shape) + rng.standard_normal(d)).astype(dtype)
    gamma = (1.0 + 0.5 * rng.standard_normal(d)).astype(dtype)
    beta = (0.5 * rng.standard_normal(d)).astype(dtype)
    rm = rng.standard_normal(d).astype(dtype)
    rv = (0.5 + rng.random(d)).astype(dtype)
    return Z, gamma, beta, rm, rv


def scratch(shape):
    n, d = shape
    return np.full((batchnorm.batchnorm_scratch_rows(n), d), np.nan)


def train(Z, gamma, beta, rm, rv, act):
    d = Z.shape[1]
    mean, inv_std = np.full(d, np.nan), np.full(d, np.nan)
    A = np.full_like(Z, np.nan)
    kernels.batchnorm_forward_train(Z, gamma, beta, rm, rv, MOMENTUM, EPS, act, mean,
                                    inv_std, A, scratch(Z.shape))
    return A, mean, inv_std


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_batchnorm_forward_train_matches_reference(dtype, rng, shape, act):
    Z, gamma, beta, rm, rv = inputs(rng, shape, dtype)
    Z_in = Z.copy()
    A_ref, mean_ref, inv_ref, rm_ref, rv_ref = ref.batchnorm_forward_train(
        Z, gamma, beta, rm, rv, MOMENTUM, EPS, act)
    A, mean, inv_std = train(Z, gamma, beta, rm, rv, act)
    assert A.dtype == dtype and rm.dtype == dtype
    assert_allclose(A, A_ref, **TOL[dtype])
    assert_allclose(mean, mean_ref, rtol=1e-12, atol=1e-12)   # float64 sums
    assert_allclose(inv_std, inv_ref, rtol=1e-12)
    assert_allclose(rm, rm_ref, **TOL[dtype])
    assert_allclose(rv, rv_ref, **TOL[dtype])
    assert_array_equal(Z, Z_in)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_batchnorm_forward_infer_matches_reference(dtype, rng, shape, act):
    Z, gamma, beta, rm, rv = inputs(rng, shape, dtype)
    A = np.full_like(Z, np.nan)
    kernels.batchnorm_forward_infer(Z, gamma, beta, rm, rv, EPS, act, np.empty(Z.shape[1]), A)
    assert_allclose(A, ref.batchnorm_forward_infer(Z, gamma, beta, rm, rv, EPS, act),
                    **TOL[dtype])


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_batchnorm_backward_matches_reference(dtype, rng, shape, act):
    Z, gamma, beta, rm, rv = inputs(rng, shape, dtype)
    dA = rng.standard_normal(shape).astype(dtype)
    A, mean, inv_std = train(Z, gamma, beta, rm, rv, act)
    d = shape[1]
    dZ, dgamma, dbeta = np.full_like(Z, np.nan), np.full(d, np.nan, dtype), \
        np.full(d, np.nan, dtype)
    kernels.batchnorm_backward(Z, A, dA, gamma, beta, mean, inv_std, act, dZ, dgamma, dbeta,
                               scratch(shape))
    dZ_ref, dgamma_ref, dbeta_ref = ref.batchnorm_backward(Z, dA, gamma, beta, EPS, act)
    assert_allclose(dZ, dZ_ref, **TOL[dtype])
    assert_allclose(dgamma, dgamma_ref, **TOL_SUM[dtype])
    assert_allclose(dbeta, dbeta_ref, **TOL_SUM[dtype])


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_batchnorm_backward_in_place(dtype, rng, shape, act):
    """dZ may be dA itself (its own loops, which read and write one array): the bits of
    the out-of-place call."""
    Z, gamma, beta, rm, rv = inputs(rng, shape, dtype)
    dA = rng.standard_normal(Z.shape).astype(dtype)
    A, mean, inv_std = train(Z, gamma, beta, rm, rv, act)
    d = shape[1]
    expected, g0, b0 = np.empty_like(Z), np.empty(d, dtype), np.empty(d, dtype)
    kernels.batchnorm_backward(Z, A, dA, gamma, beta, mean, inv_std, act, expected, g0, b0,
                               scratch(Z.shape))
    g, b = np.empty(d, dtype), np.empty(d, dtype)
    kernels.batchnorm_backward(Z, A, dA, gamma, beta, mean, inv_std, act, dA, g, b,
                               scratch(Z.shape))
    assert_array_equal(dA, expected)
    assert_array_equal(g, g0)
    assert_array_equal(b, b0)


def test_batchnorm_zero_variance_feature_is_finite(dtype, rng):
    """A constant feature normalizes to 0 (eps keeps 1/sqrt(var + eps) finite): A = beta.
    Its dZ is finite, gamma/sqrt(eps) * (dY - mean(dY)) (large, as in PyTorch, and what
    the chain rule gives); a 1-row batch is the same case for every feature."""
    Z, gamma, beta, rm, rv = inputs(rng, (70, 20), dtype)
    Z[:, 3] = 7.0
    A, mean, inv_std = train(Z, gamma, beta, rm, rv, kernels.ACT_IDENTITY)
    assert np.isfinite(A).all()
    assert_array_equal(A[:, 3], np.full(70, beta[3]))
    dA = rng.standard_normal(Z.shape).astype(dtype)
    dZ, g, b = np.empty_like(Z), np.empty(20, dtype), np.empty(20, dtype)
    kernels.batchnorm_backward(Z, A, dA, gamma, beta, mean, inv_std, kernels.ACT_IDENTITY,
                               dZ, g, b, scratch(Z.shape))
    assert np.isfinite(dZ).all() and np.isfinite(g).all()
    dY = dA[:, 3].astype(np.float64)
    assert_allclose(dZ[:, 3], gamma[3] / np.sqrt(EPS) * (dY - dY.mean()),
                    rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-3)
    one = Z[:1].copy()
    A1, _, _ = train(one, gamma, beta, rm, rv, kernels.ACT_IDENTITY)
    assert_array_equal(A1[0], beta)


def test_batchnorm_forward_train_is_callable_from_user_njit(rng):
    import numba

    @numba.njit
    def user(Z, g, b, rm, rv, mean, inv_std, A):
        work = np.empty((batchnorm.batchnorm_scratch_rows(Z.shape[0]), Z.shape[1]))
        kernels.batchnorm_forward_train(Z, g, b, rm, rv, 0.9, 1e-5, kernels.ACT_RELU, mean,
                                        inv_std, A, work)
        return A.sum()

    Z, gamma, beta, rm, rv = inputs(rng, (70, 20), np.float64)
    total = user(Z, gamma, beta, rm.copy(), rv.copy(), np.empty(20), np.empty(20),
                 np.empty_like(Z))
    A_ref = ref.batchnorm_forward_train(Z, gamma, beta, rm, rv, 0.9, 1e-5, kernels.ACT_RELU)[0]
    assert_allclose(total, A_ref.sum(), rtol=1e-12)


def test_batchnorm_scratch_rows():
    """Two rows per block of STAT_ROWS rows, plus 8."""
    r = batchnorm.STAT_ROWS
    assert batchnorm.batchnorm_scratch_rows(1) == 2 + 8
    assert batchnorm.batchnorm_scratch_rows(r) == 2 + 8
    assert batchnorm.batchnorm_scratch_rows(r + 1) == 4 + 8


@pytest.mark.parametrize("act", ACTS)
def test_batchnorm_large_offset_keeps_the_variance(dtype, rng, act):
    """A mean 1000 standard deviations away: the shifted block sums keep var and dZ
    accurate (a one-pass E[x^2] - E[x]^2 would lose everything in float32)."""
    Z, gamma, beta, rm, rv = inputs(rng, (300, 24), dtype)
    Z = (Z.astype(np.float64) + 1000.0).astype(dtype)
    A_ref, mean_ref, inv_ref, _, _ = ref.batchnorm_forward_train(Z, gamma, beta, rm, rv,
                                                                 MOMENTUM, EPS, act)
    A, mean, inv_std = train(Z, gamma, beta, rm.copy(), rv.copy(), act)
    assert_allclose(inv_std, inv_ref, rtol=1e-12)
    assert_allclose(mean, mean_ref, rtol=1e-12)
    # float32: Z's ulp at 1000 is 6e-5 and the float32 mean is off by up to half of it,
    # the same for every row of a feature: errors ~1e-5 per element, summed over 300 rows.
    f32 = dtype == np.float32
    tol = dict(rtol=1e-3, atol=1e-3) if f32 else TOL[dtype]
    tol_sum = dict(rtol=1e-3, atol=1e-2) if f32 else TOL_SUM[dtype]
    assert_allclose(A, A_ref, **tol)
    dA = rng.standard_normal(Z.shape).astype(dtype)
    dZ, g, b = np.empty_like(Z), np.empty(24, dtype), np.empty(24, dtype)
    kernels.batchnorm_backward(Z, A, dA, gamma, beta, mean, inv_std, act, dZ, g, b,
                               scratch(Z.shape))
    dZ_ref, g_ref, b_ref = ref.batchnorm_backward(Z, dA, gamma, beta, EPS, act)
    assert_allclose(dZ, dZ_ref, **tol)
    assert_allclose(g, g_ref, **tol_sum)
    assert_allclose(b, b_ref, **tol_sum)


def _fwd_bwd(variant_fwd, variant_bwd, Z, dA, gamma, beta, act):
    n, d = Z.shape
    rm, rv = beta.copy(), np.abs(gamma) + Z.dtype.type(0.5)
    mean, inv_std, A = np.full(d, np.nan), np.full(d, np.nan), np.full_like(Z, np.nan)
    dZ, dgamma, dbeta = np.full_like(Z, np.nan), np.full(d, np.nan, Z.dtype), \
        np.full(d, np.nan, Z.dtype)
    work = scratch(Z.shape)
    variant_fwd(Z, gamma, beta, rm, rv, 0.9, 1e-5, act, mean, inv_std, A, work)
    variant_bwd(Z, A, dA, gamma, beta, mean, inv_std, act, dZ, dgamma, dbeta, work)
    out = [rm, rv, mean, inv_std, A, dZ, dgamma, dbeta]
    assert not any(np.isnan(o).any() for o in out)
    return [o.tobytes() for o in out]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", [(1101, 64), (300, 1024)], ids=["tall", "wide"])
def test_batchnorm_same_bits_threads_and_variants(dtype, rng, act, shape):
    """Every activation path (identity and ReLU have their own loops): the same bytes with
    1 and 2 threads, and from the serial and the parallel variant."""
    Z, gamma, beta, _, _ = inputs(rng, shape, dtype)
    dA = rng.standard_normal(shape).astype(dtype)
    before = numba.get_num_threads()
    runs = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            runs.append(_fwd_bwd(kernels.batchnorm_forward_train, kernels.batchnorm_backward,
                                 Z, dA, gamma, beta, act))
            runs.append(_fwd_bwd(batchnorm._bn_train_serial, batchnorm._bn_backward_serial,
                                 Z, dA, gamma, beta, act))
    finally:
        numba.set_num_threads(before)
    assert all(r == runs[0] for r in runs[1:])


@numba.njit
def _fwd_bwd_steps(steps, Z, dA, gamma, beta, act, rm, rv, mean, inv_std, A, dZ, dgamma,
                   dbeta, work):
    for _ in range(steps):
        kernels.batchnorm_forward_train(Z, gamma, beta, rm, rv, 0.9, 1e-5, act, mean, inv_std,
                                        A, work)
        kernels.batchnorm_backward(Z, A, dA, gamma, beta, mean, inv_std, act, dZ, dgamma,
                                   dbeta, work)


@pytest.mark.parametrize("shape", SHAPES)
def test_batchnorm_kernels_allocate_nothing(rng, shape):
    """Numba's allocation counter: 3 forward+backward steps allocate what 1 step does
    (the arguments' boxing), so a call allocates nothing."""
    from numba.core.runtime import _nrt_python, rtsys
    Z, gamma, beta, rm, rv = inputs(rng, shape, np.float32)
    dA = rng.standard_normal(shape).astype(np.float32)
    d = shape[1]
    args = (Z, dA, gamma, beta, kernels.ACT_RELU, rm, rv, np.empty(d), np.empty(d),
            np.empty_like(Z), np.empty_like(Z), np.empty(d, np.float32),
            np.empty(d, np.float32), scratch(shape))
    _fwd_bwd_steps(1, *args)  # compile
    was_enabled = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_enable_stats()
    try:
        counts = []
        for steps in (1, 3):
            before = rtsys.get_allocation_stats().alloc
            _fwd_bwd_steps(steps, *args)
            counts.append(rtsys.get_allocation_stats().alloc - before)
    finally:
        if not was_enabled:
            _nrt_python.memsys_disable_stats()
    assert counts[0] == counts[1]
