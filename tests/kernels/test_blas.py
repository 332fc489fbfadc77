"""gemm against the float64 reference, every transpose and layout, and both backends."""
import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import kernels
import reference as ref

#: (m, n, k): op(A) (m, k) @ op(B) (k, n). Odd sizes, and a training step's shape.
SHAPES = [(7, 5, 3), (33, 17, 65), (64, 256, 784)]


def _operand(rng, rows, cols, dtype, trans):
    """A matrix whose op() is (rows, cols): stored transposed when ``trans``."""
    M = rng.standard_normal((cols, rows) if trans else (rows, cols)).astype(dtype)
    return M


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_matches_reference(dtype, rng, tol, shape, trans_a, trans_b):
    m, n, k = shape
    A = _operand(rng, m, k, dtype, trans_a)
    B = _operand(rng, k, n, dtype, trans_b)
    C = rng.standard_normal((m, n)).astype(dtype)
    expected = ref.gemm(A, B, C, trans_a, trans_b, 0.5, 2.0)
    A_in, B_in = A.copy(), B.copy()
    kernels.gemm(A, B, C, trans_a, trans_b, 0.5, 2.0)
    assert C.dtype == dtype
    assert_allclose(C, expected, **tol(dtype, "gemm", k=k))
    assert_array_equal(A, A_in)
    assert_array_equal(B, B_in)


def test_gemm_beta_zero_ignores_nan_in_C(dtype, rng, tol):
    A, B = rng.standard_normal((6, 4)).astype(dtype), rng.standard_normal((4, 5)).astype(dtype)
    C = np.full((6, 5), np.nan, dtype)
    kernels.gemm(A, B, C, False, False, 1.0, 0.0)
    assert_allclose(C, ref.gemm(A, B, np.zeros_like(C)), **tol(dtype, "gemm", k=4))


def test_gemm_views_transposes_and_row_ranges(dtype, rng, tol):
    """A column-major view (X.T) is passed with the flag flipped; a block inside a
    bigger array keeps its leading dimension; nothing outside the block is written."""
    X = rng.standard_normal((9, 6)).astype(dtype)
    D = rng.standard_normal((9, 4)).astype(dtype)
    big = np.zeros((10, 8), dtype)
    kernels.gemm(X.T, D, big[2:8, 1:5], False, False, 1.0, 0.0)
    assert_allclose(big[2:8, 1:5], X.T.astype(np.float64) @ D, **tol(dtype, "gemm", k=9))
    big[2:8, 1:5] = 0
    assert not big.any()
    W = rng.standard_normal((6, 4)).astype(dtype)
    out = np.empty((9, 6), dtype)
    kernels.gemm(D[:, :], W.T, out, False, False, 1.0, 0.0)  # W.T is column-major
    assert_allclose(out, D.astype(np.float64) @ W.T, **tol(dtype, "gemm", k=4))


def test_gemm_empty_inner_dimension_scales_C(dtype):
    C = np.full((3, 4), 2.0, dtype)
    kernels.gemm(np.empty((3, 0), dtype), np.empty((0, 4), dtype), C, False, False, 1.0, 0.5)
    assert_array_equal(C, np.ones((3, 4), dtype))
    kernels.gemm(np.empty((3, 0), dtype), np.empty((0, 4), dtype), C, False, False, 1.0, 0.0)
    assert_array_equal(C, np.zeros((3, 4), dtype))


def test_gemm_rejects_a_matrix_without_a_unit_stride(dtype):
    A = np.ones((8, 8), dtype)[::2, ::2]
    with pytest.raises(ValueError, match="unit stride"):
        kernels.gemm(A, np.ones((4, 4), dtype), np.empty((4, 4), dtype), False, False,
                     1.0, 0.0)


def test_gemm_same_bits_run_to_run(rng):
    """The same inputs at other addresses (another alignment) give the same bits."""
    A = rng.standard_normal((70, 300)).astype(np.float32)
    B = rng.standard_normal((300, 50)).astype(np.float32)
    first = np.empty((70, 50), np.float32)
    kernels.gemm(A, B, first, False, False, 1.0, 0.0)
    for shift in range(1, 5):
        block = np.empty(A.size + B.size + 16, np.float32)
        A2 = block[shift:shift + A.size].reshape(A.shape)
        B2 = block[shift + A.size:shift + A.size + B.size].reshape(B.shape)
        A2[...], B2[...] = A, B
        again = np.empty_like(first)
        kernels.gemm(A2, B2, again, False, False, 1.0, 0.0)
        assert_array_equal(again, first)


_OTHER_BACKEND = """
import numpy as np, kernels, nn
from numpy.testing import assert_allclose
assert kernels.BLAS_BACKEND == {backend!r}, kernels.BLAS_BACKEND
rng = np.random.default_rng(0)
for dt, tol in [(np.float32, {tol32!r}), (np.float64, {tol64!r})]:
    A, B = rng.standard_normal((40, 30)).astype(dt), rng.standard_normal((40, 20)).astype(dt)
    C = np.empty((30, 20), dt)
    kernels.gemm(A, B, C, True, False, 1.0, 0.0)
    assert_allclose(C, A.T.astype(np.float64) @ B, **tol)  # float64's fails a float32 GEMM
data = nn.datasets.load_digits()
model = nn.Sequential([nn.Dense(64, 32, activation="relu"), nn.Dense(32, 10)], seed=0)
model.fit(data.X / 16, data.y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(lr=0.01),
          epochs=5, batch_size=64)
assert model.evaluate(data.X / 16, data.y)["accuracy"] > 0.9
print("ok")
"""


def _has_mkl():
    probe = "import kernels; print(kernels.BLAS_BACKEND)"
    env = dict(os.environ, NUMBA_NN_BLAS="mkl")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, timeout=120)
    return out.stdout.strip() == "mkl"


@pytest.mark.parametrize("backend", ["openblas", "mkl"])
def test_each_backend_trains_in_a_fresh_process(backend, tol):
    if backend == "mkl" and kernels.BLAS_BACKEND != "mkl" and not _has_mkl():
        pytest.skip("oneMKL is not installed (pip install mkl)")
    env = dict(os.environ, NUMBA_NN_BLAS=backend)
    script = _OTHER_BACKEND.format(backend=backend, tol32=tol(np.float32, "gemm", k=40),
                                   tol64=tol(np.float64, "gemm", k=40))
    out = subprocess.run([sys.executable, "-c", script],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_unknown_backend_is_a_clear_import_error():
    env = dict(os.environ, NUMBA_NN_BLAS="atlas")
    out = subprocess.run([sys.executable, "-c", "import kernels"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "NUMBA_NN_BLAS must be 'mkl' or 'openblas'; got 'atlas'" in out.stderr


def test_the_default_backend_is_onemkl_when_installed():
    """oneMKL first on every CPU (measured faster on Intel Xeon and AMD EPYC); a fresh
    process with no choice made gets it when it is installed, else OpenBLAS."""
    env = dict(os.environ, NUMBA_NN_BLAS="")
    out = subprocess.run([sys.executable, "-c", "import kernels; print(kernels.BLAS_BACKEND)"],
                         env=env, capture_output=True, text=True, timeout=120)
    expected = "mkl" if _has_mkl() else "openblas"
    assert out.stdout.strip() == expected, out.stderr[-2000:]
