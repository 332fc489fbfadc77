"""kernels.bf16: bfloat16 rounding and the bf16 GEMM on every backend this machine has.

The GEMM's reference is float64 ``alpha * op(Ar) @ op(Br) + beta * C`` of the operands
rounded to bf16 (``reference.gemm_bf16``, NumPy, independent of the kernels). The products of
bf16 values are exact in float32, so the only error is the float32 accumulation of k
terms and the alpha/beta step: |C - ref| <= (k + 2) * 2**-24 * (|alpha| |Ar| @ |Br| +
|beta| |C0|) elementwise (Higham's gamma_{k+2} with u = 2**-24), checked with a
factor 2 of slack. The avx512bf16 kernel is also checked bit for bit against a NumPy
simulation of ``vdpbf16ps`` (per lane: the odd-k product added, then the even-k one,
each rounded to float32).
"""
import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from numpy.testing import assert_array_equal

import reference as ref
from kernels import bf16

U32 = 2.0 ** -24
BACKENDS = [b for b in bf16.available_backends() if b != "none"]
needs_avx512bf16 = pytest.mark.skipif(not bf16.HAS_AVX512BF16,
                                      reason="the CPU has no AVX512-BF16")


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each backend this process can run, switched in for the test."""
    previous = bf16._set_backend(request.param)
    yield request.param
    bf16._set_backend(previous)


@pytest.fixture
def avx512():
    if not bf16.HAS_AVX512BF16:
        pytest.skip("the CPU has no AVX512-BF16")
    previous = bf16._set_backend("avx512bf16")
    yield
    bf16._set_backend(previous)


def _operand(rng, rows, cols, trans):
    """A float32 matrix whose op() is (rows, cols): stored transposed when ``trans``."""
    shape = (cols, rows) if trans else (rows, cols)
    return rng.standard_normal(shape).astype(np.float32)


def _op(M, trans):
    return M.T if trans else M


def _check(C, A, B, C0, trans_a, trans_b, alpha, beta):
    a = _op(ref.round_to_bf16(A).astype(np.float64), trans_a)
    b = _op(ref.round_to_bf16(B).astype(np.float64), trans_b)
    c0 = C0.astype(np.float64)
    expected = ref.gemm_bf16(A, B, c0, trans_a, trans_b, alpha, beta)
    k = a.shape[1]
    bound = (k + 2) * U32 * (abs(alpha) * (np.abs(a) @ np.abs(b)) + abs(beta) * np.abs(c0))
    err = np.abs(C.astype(np.float64) - expected)
    assert np.all(err <= 2 * bound + 1e-30), float(np.max(err / (bound + 1e-30)))


# (m, n, k): a row, a column, odd k, k = 1 and 2, sizes off the 12 x 32 tiles, a
# panel of every edge size (1..11 rows), and a training step's shape.
SHAPES = [(1, 40, 9), (37, 1, 16), (13, 33, 65), (25, 47, 2), (5, 17, 1), (12, 32, 64),
          (100, 70, 33), (23, 50, 7), (64, 256, 784)]
TRANSPOSES = [(False, False), (True, False), (False, True), (True, True)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("trans", TRANSPOSES, ids=["nn", "tn", "nt", "tt"])
def test_gemm_bf16_matches_reference(backend, shape, trans):
    m, n, k = shape
    trans_a, trans_b = trans
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    A = _operand(rng, m, k, trans_a)
    B = _operand(rng, k, n, trans_b)
    A_in, B_in = A.copy(), B.copy()
    for alpha, beta in ((1.0, 0.0), (0.5, 2.0), (-1.5, 1.0)):
        C0 = rng.standard_normal((m, n)).astype(np.float32)
        C = C0.copy()
        bf16.gemm_bf16(A, B, C, trans_a, trans_b, alpha, beta)
        _check(C, A, B, C0, trans_a, trans_b, alpha, beta)
    assert_array_equal(A, A_in)
    assert_array_equal(B, B_in)


def test_defaults_and_beta_zero_ignores_nan_in_C(backend):
    rng = np.random.default_rng(1)
    A, B = _operand(rng, 30, 20, False), _operand(rng, 20, 40, False)
    C = np.full((30, 40), np.nan, np.float32)
    bf16.gemm_bf16(A, B, C)
    _check(C, A, B, np.zeros_like(C), False, False, 1.0, 0.0)


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_k_zero_gives_beta_C(backend, beta):
    C0 = np.arange(12, dtype=np.float32).reshape(3, 4)
    C = C0.copy()
    bf16.gemm_bf16(np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32), C,
                   False, False, 1.0, beta)
    assert_array_equal(C, C0 * np.float32(beta))
    empty = np.zeros((0, 4), np.float32)
    bf16.gemm_bf16(np.zeros((0, 5), np.float32), np.zeros((5, 4), np.float32), empty)


def test_views_transposes_and_row_ranges(backend):
    """A column-major view (X.T) is its row-major block with the flag flipped; a row
    range keeps its leading dimension; a block of C inside a bigger array is written
    and nothing outside it."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 30)).astype(np.float32)
    D = rng.standard_normal((40, 50)).astype(np.float32)
    big = np.zeros((40, 60), np.float32)
    bf16.gemm_bf16(X.T, D, big[3:33, 5:55], False, False, 1.0, 0.0)
    _check(big[3:33, 5:55], X.T, D, np.zeros((30, 50), np.float32), False, False, 1.0, 0.0)
    big[3:33, 5:55] = 0
    assert not big.any()
    W = rng.standard_normal((30, 50)).astype(np.float32)
    out = np.empty((25, 30), np.float32)
    bf16.gemm_bf16(D[10:35], W.T, out, False, False, 1.0, 0.0)   # row range @ col-major
    _check(out, D[10:35], W, np.zeros_like(out), False, True, 1.0, 0.0)
    bf16.gemm_bf16(X[5:35].T, D[5:35], big[:30, :50], False, False, 1.0, 0.0)
    _check(big[:30, :50], X[5:35], D[5:35], np.zeros((30, 50), np.float32), True, False,
           1.0, 0.0)
    with pytest.raises(ValueError):
        bf16.gemm_bf16(X[:, ::2], D[:, :15].T.copy(), np.zeros((40, 40), np.float32))
    with pytest.raises(ValueError):
        bf16.gemm_bf16(X.astype(np.float64), D.T.copy(), np.zeros((40, 40)))


def test_callable_from_njit(backend):
    @numba.njit
    def forward(X, W, Z):
        bf16.gemm_bf16(X, W, Z, False, False, 1.0, 0.0)
        return Z.sum()

    rng = np.random.default_rng(3)
    X, W = _operand(rng, 20, 30, False), _operand(rng, 30, 10, False)
    Z = np.empty((20, 10), np.float32)
    forward(X, W, Z)
    _check(Z, X, W, np.zeros_like(Z), False, False, 1.0, 0.0)


def test_same_bits_for_one_and_two_threads(backend):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("fewer than 2 Numba threads")
    rng = np.random.default_rng(4)
    m, n, k = 300, 100, 301
    assert m * n * k >= bf16.PARALLEL_MIN_MNK   # the parallel build, for avx512bf16
    A, B = _operand(rng, m, k, True), _operand(rng, k, n, False)
    results = []
    previous = numba.get_num_threads()
    try:
        for threads in (1, 2, 1):
            numba.set_num_threads(threads)
            C = np.empty((m, n), np.float32)
            bf16.gemm_bf16(A, B, C, True, False, 1.0, 0.0)
            results.append(C)
    finally:
        numba.set_num_threads(previous)
    assert_array_equal(results[0].view(np.uint32), results[1].view(np.uint32))
    assert_array_equal(results[0].view(np.uint32), results[2].view(np.uint32))
    _check(results[1], A, B, np.zeros((m, n), np.float32), True, False, 1.0, 0.0)


def test_avx512bf16_serial_and_parallel_builds_agree(avx512):
    """Small products take the serial build, large ones the parallel: same bits."""
    rng = np.random.default_rng(8)
    m, n, k = 50, 40, 30
    A, B = _operand(rng, m, k, True), _operand(rng, k, n, True)
    out = []
    for build in (bf16._gemm_avx512_serial, bf16._gemm_avx512_parallel):
        C = np.full((m, n), 2.0, np.float32)
        build(A.ctypes.data, k, m, m, False, B.ctypes.data, n, k, k, False,
              C.ctypes.data, n, m, n, k, 0.5, -1.0)
        out.append(C)
    assert_array_equal(out[0].view(np.uint32), out[1].view(np.uint32))
    _check(out[0], A, B, np.full((m, n), 2.0, np.float32), True, True, 0.5, -1.0)


def _simulate_vdpbf16ps(A, B):
    """NumPy model of the avx512bf16 kernel (alpha 1, beta 0): per element of C, the
    pairs (2p, 2p + 1) of k in order, the odd one's product added first, each sum
    rounded to float32 (products of bf16 values are exact in float32)."""
    a, b = ref.round_to_bf16(A), ref.round_to_bf16(B)
    m, k = a.shape
    if k % 2:
        a = np.hstack([a, np.zeros((m, 1), np.float32)])
        b = np.vstack([b, np.zeros((1, b.shape[1]), np.float32)])
    acc = np.zeros((m, b.shape[1]), np.float32)
    for p in range(a.shape[1] // 2):
        for q in (2 * p + 1, 2 * p):
            acc = acc + np.outer(a[:, q], b[q])   # float32 + exact float32 product
    return acc


@pytest.mark.parametrize("trans", TRANSPOSES, ids=["nn", "tn", "nt", "tt"])
def test_avx512bf16_bits_match_the_instruction(avx512, trans):
    rng = np.random.default_rng(5)
    m, n, k = 27, 45, 37
    trans_a, trans_b = trans
    A, B = _operand(rng, m, k, trans_a), _operand(rng, k, n, trans_b)
    C = np.empty((m, n), np.float32)
    bf16.gemm_bf16(A, B, C, trans_a, trans_b, 1.0, 0.0)
    expected = _simulate_vdpbf16ps(np.ascontiguousarray(_op(A, trans_a)),
                                   np.ascontiguousarray(_op(B, trans_b)))
    assert_array_equal(C.view(np.uint32), expected.view(np.uint32))


def test_avx512bf16_is_chosen_where_the_cpu_has_it():
    if "NUMBA_NN_BF16" in os.environ:
        pytest.skip("backend forced by NUMBA_NN_BF16")
    if not bf16.HAS_AVX512BF16:
        assert bf16.BF16_BACKEND in ("none", "mkl")
    elif bf16.BF16_BACKEND != "mkl":   # mkl: Intel with oneMKL, where it is preferred
        assert bf16.BF16_BACKEND == "avx512bf16"


# --- rounding -----------------------------------------------------------------------

_TIES = np.array([
    # value, its bf16 rounding
    (1 + 2.0 ** -8, 1.0),                      # halfway, 1.0 is even: down
    (1 + 3 * 2.0 ** -8, 1 + 2.0 ** -6),        # halfway, 1 + 2**-7 is odd: up
    (-(1 + 2.0 ** -8), -1.0),
    (-(1 + 3 * 2.0 ** -8), -(1 + 2.0 ** -6)),
    (1 + 2.0 ** -8 + 2.0 ** -20, 1 + 2.0 ** -7),   # above halfway: up
    (1 + 2.0 ** -8 - 2.0 ** -20, 1.0),             # below halfway: down
    (3.0 * 2.0 ** 100, 3.0 * 2.0 ** 100),          # exact
    (0.0, 0.0),
    (2.0 ** -130 * (1 + 2.0 ** -1), 2.0 ** -130 * (1 + 2.0 ** -1)),  # subnormal, exact
    (np.inf, np.inf),
    (-np.inf, -np.inf),
    (float(np.finfo(np.float32).max), np.inf),     # beyond bf16's largest + half ulp
], dtype=np.float64)


def test_round_to_bf16_ties_to_even_inf_nan():
    x = _TIES[:, 0].astype(np.float32)
    out = np.empty_like(x)
    bf16.round_to_bf16(x, out)
    assert_array_equal(out, _TIES[:, 1].astype(np.float32))
    # signed zero, and NaNs: a payload only in the low 16 bits must not become inf
    specials = np.array([0x80000000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0x7F80FFFF,
                         0xFF800001], np.uint32).view(np.float32)
    out = np.empty_like(specials)
    bf16.round_to_bf16(specials, out)
    assert out.view(np.uint32)[0] == 0x80000000
    assert np.isnan(out[1:]).all()
    assert (np.signbit(out[1:]) == np.signbit(specials[1:])).all()


def test_round_to_bf16_matches_reference():
    rng = np.random.default_rng(6)
    X = (rng.standard_normal((50, 37)) * 10.0 ** rng.integers(-30, 30, (50, 37))
         ).astype(np.float32)
    out = np.empty_like(X)
    bf16.round_to_bf16(X, out)
    assert_array_equal(out.view(np.uint32), ref.round_to_bf16(X).view(np.uint32))
    v = np.empty(37, np.float32)
    bf16.round_to_bf16(X[3], v)
    assert_array_equal(v, out[3])
    T = np.empty((37, 50), np.float32)
    bf16.round_to_bf16(X.T, T)                     # any strides
    assert_array_equal(T, out.T)
    Y = X.copy()
    bf16.round_to_bf16(Y, Y)                       # in place
    assert_array_equal(Y, out)


def test_to_bf16_bits_matches_reference():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((9, 11)).astype(np.float32)
    X[0, :6] = _TIES[:6, 0]
    X[1, 0], X[1, 1] = np.nan, -np.inf
    bits = np.empty(X.shape, np.uint16)
    bf16.to_bf16_bits(X, bits)
    expected = ref.to_bf16_bits(X)
    expected[1, 0] = bits[1, 0]
    assert_array_equal(bits, expected)
    assert (bits[1, 0] & 0x7F80) == 0x7F80 and (bits[1, 0] & 0x7F) != 0   # NaN
    v = np.empty(11, np.uint16)
    bf16.to_bf16_bits(X[2], v)
    assert_array_equal(v, bits[2])


def test_gemm_rounds_operands_to_nearest_even_and_keeps_inf_nan(backend):
    """The packing's rounding, seen through 1 x 1 x k products with exact sums."""
    ties = _TIES[:6, 0].astype(np.float32)
    C = np.empty((6, 1), np.float32)
    bf16.gemm_bf16(ties[:, None].copy(), np.ones((1, 1), np.float32), C)
    assert_array_equal(C[:, 0], _TIES[:6, 1].astype(np.float32))
    C = np.empty((2, 6), np.float32)                  # the same through B
    bf16.gemm_bf16(np.ones((2, 1), np.float32), ties[None, :].copy(), C)
    assert_array_equal(C, np.tile(_TIES[:6, 1].astype(np.float32), (2, 1)))
    A = np.array([[1.0, 2.0], [np.inf, 1.0], [np.nan, 1.0],
                  [np.uint32(0x7F800001).view(np.float32), 0.0]], np.float32)
    B = np.array([[1.0], [1.0]], np.float32)
    C = np.empty((4, 1), np.float32)
    bf16.gemm_bf16(A, B, C)
    assert C[0, 0] == 3.0
    assert C[1, 0] == np.inf
    assert np.isnan(C[2, 0]) and np.isnan(C[3, 0])


# --- backend choice -----------------------------------------------------------------

def _run(env_extra, code):
    env = dict(os.environ, **env_extra)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, cwd=os.path.dirname(os.path.dirname(
                              os.path.dirname(os.path.abspath(__file__)))))


def test_env_forces_backend_and_rejects_unknown_names():
    done = _run({"NUMBA_NN_BF16": "emulate"},
                "import kernels.bf16 as b; print(b.BF16_BACKEND)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "emulate"
    done = _run({"NUMBA_NN_BF16": "fp8"}, "import kernels.bf16")
    assert done.returncode != 0 and "NUMBA_NN_BF16" in done.stderr
    if not bf16.HAS_AVX512BF16:
        done = _run({"NUMBA_NN_BF16": "avx512bf16"}, "import kernels.bf16")
        assert done.returncode != 0 and "AVX512-BF16" in done.stderr


_MKL_CHECK = """
import numpy as np, kernels.bf16 as b
rng = np.random.default_rng(0)
A = rng.standard_normal((33, 70)).astype(np.float32)
B = rng.standard_normal((70, 21)).astype(np.float32)
C = np.empty((33, 21), np.float32)
b.gemm_bf16(A, B, C, False, False, 1.0, 0.0)
np.save({path!r}, C)
print(b.BF16_BACKEND)
"""


def test_mkl_backend_in_a_process_on_onemkl(tmp_path):
    """oneMKL's cblas_gemm_bf16bf16f32, where kernels.blas can run on oneMKL."""
    if "mkl" in bf16.available_backends():
        pytest.skip("tested in this process (the backend fixture)")
    path = str(tmp_path / "c.npy")
    done = _run({"NUMBA_NN_BLAS": "mkl", "NUMBA_NN_BF16": "mkl"},
                _MKL_CHECK.format(path=path))
    if done.returncode != 0 and ("no usable libmkl_rt" in done.stderr
                                 or "needs kernels.blas on oneMKL" in done.stderr):
        pytest.skip("oneMKL (with cblas_gemm_bf16bf16f32) is not installed")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "mkl"
    rng = np.random.default_rng(0)
    A = rng.standard_normal((33, 70)).astype(np.float32)
    B = rng.standard_normal((70, 21)).astype(np.float32)
    _check(np.load(path), A, B, np.zeros((33, 21), np.float32), False, False, 1.0, 0.0)


# --- the dense kernels' bf16 argument --------------------------------------------------

def test_dense_kernels_with_bf16_round_every_gemm_operand(backend):
    """dense_forward / dense_backward(bf16=True): X @ W, X.T @ dZ and dZ @ W.T from
    bf16-rounded operands; bias, activation, dZ, db and the L2 term in float32."""
    from kernels import ACT_RELU, dense_backward, dense_forward, n_blocks
    rng = np.random.default_rng(8)
    n, k, m, l2 = 45, 37, 29, 0.2
    X = rng.standard_normal((n, k)).astype(np.float32)
    W = (rng.standard_normal((k, m)) / np.sqrt(k)).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    dA = rng.standard_normal((n, m)).astype(np.float32)
    Z, A = np.empty((n, m), np.float32), np.empty((n, m), np.float32)
    dense_forward(X, W, b, ACT_RELU, Z, A, None, True)
    x, w = ref.round_to_bf16(X).astype(np.float64), ref.round_to_bf16(W).astype(np.float64)
    z = x @ w + b
    _check(Z - b, X, W, np.zeros_like(Z), False, False, 1.0, 0.0)   # the product itself
    np.testing.assert_array_equal(A, np.maximum(Z, 0))
    dZ, dW = np.empty_like(Z), np.empty_like(W)
    db, dX = np.empty(m, np.float32), np.empty_like(X)
    dense_backward(X, W, Z, A, dA, ACT_RELU, l2, 0.0, dZ, dW, db, dX,
                   np.empty((n_blocks(n), m)), None, True)
    dz = dA.astype(np.float64) * (Z > 0)
    np.testing.assert_array_equal(dZ, dz.astype(np.float32))
    np.testing.assert_allclose(db, dz.sum(0), rtol=1e-6, atol=1e-6)
    _check(dW - (l2 / n) * W, X, dZ, np.zeros_like(W), True, False, 1.0, 0.0)
    _check(dX, dZ, W, np.zeros_like(X), False, True, 1.0, 0.0)
    np.testing.assert_allclose(Z, z, rtol=1e-5, atol=1e-5 * np.abs(z).max())
    # the unrounded product is far outside these bounds: the rounding happened
    plain = X.astype(np.float64).T @ dz
    assert np.abs(plain - (dW - (l2 / n) * W)).max() > 1e-3
