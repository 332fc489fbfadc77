"""activation_forward and activation_backward against the float64 reference."""
import pathlib
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import kernels
import reference as ref

#: (70, 20) runs the serial variant, (1100, 64) the parallel one.
SHAPES = [pytest.param((70, 20), id="serial"), pytest.param((1100, 64), id="parallel")]

ACT_CODES = [
    pytest.param(kernels.ACT_IDENTITY, id="identity"),
    pytest.param(kernels.ACT_RELU, id="relu"),
    pytest.param(kernels.ACT_LEAKY_RELU, id="leaky_relu"),
    pytest.param(kernels.ACT_TANH, id="tanh"),
    pytest.param(kernels.ACT_SIGMOID, id="sigmoid"),
]

#: Over, at and just past float32's exp overflow (88.7), and far beyond it.
EXTREMES = np.array([
    [-1000.0, -100.0, -89.0, -88.0, -20.0],
    [-1.0, -1e-3, 0.0, 1e-3, 1.0],
    [20.0, 88.0, 89.0, 100.0, 1000.0],
])

#: The reference may underflow (exp(-1000) = 0 is right), but must not overflow or NaN.
STRICT = dict(over="raise", divide="raise", invalid="raise", under="ignore")


def test_shapes_cover_serial_and_parallel():
    sizes = [p.values[0][0] * p.values[0][1] for p in SHAPES]
    assert sizes[0] < kernels.PARALLEL_MIN_SIZE <= sizes[1]


def test_activation_codes_table():
    assert sorted(set(kernels.ACTIVATION_CODES.values())) == sorted(ref.ACTIVATIONS)
    assert kernels.ACTIVATION_CODES["linear"] == kernels.ACTIVATION_CODES["identity"]
    assert kernels.LEAKY_RELU_SLOPE == 0.01


def test_every_public_kernel_has_a_reference_test():
    """Every callable in kernels.__all__ has a reference and a ..._matches_reference test."""
    here = pathlib.Path(__file__).parent
    source = "\n".join(p.read_text() for p in here.glob("test_*.py"))
    names = [n for n in kernels.__all__ if callable(getattr(kernels, n))]
    assert "dense_forward" in names and "softmax_cross_entropy" in names
    missing = [n for n in names
               if not hasattr(ref, n)
               or not re.search(rf"^def test_{n}_matches_reference\(", source, re.M)]
    assert missing == []


@pytest.mark.parametrize("act_code", ACT_CODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_activation_forward_matches_reference(dtype, rng, tol, shape, act_code):
    Z = (3.0 * rng.standard_normal(shape)).astype(dtype)
    Z_in = Z.copy()
    A = np.full_like(Z, np.nan)
    kernels.activation_forward(Z, act_code, A)
    assert A.dtype == dtype
    assert_allclose(A, ref.activation_forward(Z, act_code), **tol(dtype))
    assert_array_equal(Z, Z_in)


@pytest.mark.parametrize("act_code", ACT_CODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_activation_forward_in_place(dtype, rng, tol, shape, act_code):
    """A may be Z itself."""
    Z = (3.0 * rng.standard_normal(shape)).astype(dtype)
    expected = ref.activation_forward(Z, act_code)
    kernels.activation_forward(Z, act_code, Z)
    assert_allclose(Z, expected, **tol(dtype))


@pytest.mark.parametrize("act_code", ACT_CODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_activation_backward_matches_reference(dtype, rng, tol, shape, act_code):
    Z = (3.0 * rng.standard_normal(shape)).astype(dtype)
    A = ref.activation_forward(Z, act_code).astype(dtype)
    dA = rng.standard_normal(shape).astype(dtype)
    inputs = [Z.copy(), A.copy(), dA.copy()]
    dZ = np.full_like(Z, np.nan)
    kernels.activation_backward(Z, A, dA, act_code, dZ)
    assert dZ.dtype == dtype
    assert_allclose(dZ, ref.activation_backward(Z, dA, act_code), **tol(dtype))
    for before, after in zip(inputs, [Z, A, dA]):
        assert_array_equal(after, before)


@pytest.mark.parametrize("act_code", ACT_CODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_activation_backward_in_place(dtype, rng, tol, shape, act_code):
    """dZ may be dA itself."""
    Z = (3.0 * rng.standard_normal(shape)).astype(dtype)
    A = ref.activation_forward(Z, act_code).astype(dtype)
    dA = rng.standard_normal(shape).astype(dtype)
    expected = ref.activation_backward(Z, dA, act_code)
    kernels.activation_backward(Z, A, dA, act_code, dA)
    assert_allclose(dA, expected, **tol(dtype))


@pytest.mark.parametrize("act_code", ACT_CODES)
def test_activation_extremes_finite_and_match_reference(dtype, tol, act_code):
    """|z| up to 1000: no overflow to inf or NaN, and the saturated values exactly."""
    Z = EXTREMES.astype(dtype)
    with np.errstate(**STRICT):
        A_ref = ref.activation_forward(Z, act_code)
        dZ_ref = ref.activation_backward(Z, np.ones_like(Z), act_code)
    A = np.full_like(Z, np.nan)
    dZ = np.full_like(Z, np.nan)
    kernels.activation_forward(Z, act_code, A)
    kernels.activation_backward(Z, A, np.ones_like(Z), act_code, dZ)
    assert np.isfinite(A).all() and np.isfinite(dZ).all()
    assert_allclose(A, A_ref, **tol(dtype))
    assert_allclose(dZ, dZ_ref, **tol(dtype))
    if act_code in (kernels.ACT_SIGMOID, kernels.ACT_TANH):
        low = 0.0 if act_code == kernels.ACT_SIGMOID else -1.0
        assert A[0, 0] == low and A[2, 4] == 1.0
        assert dZ[0, 0] == 0.0 and dZ[2, 4] == 0.0


def test_sigmoid_matches_logistic_formula_at_moderate_z(rng):
    """The reference's stable sigmoid is the textbook 1 / (1 + exp(-z))."""
    z = rng.uniform(-30.0, 30.0, 1000)
    assert_allclose(ref.sigmoid(z), 1.0 / (1.0 + np.exp(-z)), rtol=1e-15, atol=0)
