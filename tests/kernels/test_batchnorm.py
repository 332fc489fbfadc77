"""batchnorm_forward_train, batchnorm_forward_infer and batchnorm_backward against the
float64 reference (the backward reference goes through mean and variance by the
textbook chain rule, not the kernel's simplified form)."""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import kernels
import reference as ref

#: (70, 20) runs the serial variant, (1100, 64) the parallel one (70400 elements).
SHAPES = [pytest.param((70, 20), id="serial"), pytest.param((1100, 64), id="parallel")]
ACTS = [pytest.param(kernels.ACT_IDENTITY, id="identity"),
        pytest.param(kernels.ACT_RELU, id="relu"),
        pytest.param(kernels.ACT_TANH, id="tanh")]
EPS = 1e-5
MOMENTUM = 0.9

#: Outputs are O(1). float32: the kernel normalizes in float32 (a few ulps per element);
#: dgamma/dbeta are float64 sums of n float32 products, each rounded once (error
#: ~ sqrt(n) * eps32 per unit term): 1100 rows give ~1e-5. float64: a few ulps, and
#: the reference's different (chain-rule) formula for dZ costs a few more.
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


def train(Z, gamma, beta, rm, rv, act):
    d = Z.shape[1]
    mean, inv_std = np.full(d, np.nan), np.full(d, np.nan)
    A = np.full_like(Z, np.nan)
    kernels.batchnorm_forward_train(Z, gamma, beta, rm, rv, MOMENTUM, EPS, act, mean,
                                    inv_std, A)
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
                               np.empty((2, d)))
    dZ_ref, dgamma_ref, dbeta_ref = ref.batchnorm_backward(Z, dA, gamma, beta, EPS, act)
    assert_allclose(dZ, dZ_ref, **TOL[dtype])
    assert_allclose(dgamma, dgamma_ref, **TOL_SUM[dtype])
    assert_allclose(dbeta, dbeta_ref, **TOL_SUM[dtype])


def test_batchnorm_backward_in_place(dtype, rng):
    """dZ may be dA itself."""
    Z, gamma, beta, rm, rv = inputs(rng, (70, 20), dtype)
    dA = rng.standard_normal(Z.shape).astype(dtype)
    A, mean, inv_std = train(Z, gamma, beta, rm, rv, kernels.ACT_TANH)
    expected, _, _ = ref.batchnorm_backward(Z, dA, gamma, beta, EPS, kernels.ACT_TANH)
    g, b = np.empty(20, dtype), np.empty(20, dtype)
    kernels.batchnorm_backward(Z, A, dA, gamma, beta, mean, inv_std, kernels.ACT_TANH, dA, g, b,
                               np.empty((2, 20)))
    assert_allclose(dA, expected, **TOL[dtype])


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
                               dZ, g, b, np.empty((2, 20)))
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
        kernels.batchnorm_forward_train(Z, g, b, rm, rv, 0.9, 1e-5, kernels.ACT_RELU, mean,
                                        inv_std, A)
        return A.sum()

    Z, gamma, beta, rm, rv = inputs(rng, (70, 20), np.float64)
    total = user(Z, gamma, beta, rm.copy(), rv.copy(), np.empty(20), np.empty(20),
                 np.empty_like(Z))
    A_ref = ref.batchnorm_forward_train(Z, gamma, beta, rm, rv, 0.9, 1e-5, kernels.ACT_RELU)[0]
    assert_allclose(total, A_ref.sum(), rtol=1e-12)
