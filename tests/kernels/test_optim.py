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
