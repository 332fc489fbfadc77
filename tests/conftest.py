"""Shared fixtures and the one tolerance table of the test suite.

Nothing here knows about ``nn``; the API tests add their own ``tests/nn/conftest.py``.
"""
# Load SciPy's OpenBLAS before threadpoolctl looks for BLAS libraries: Numba's np.dot
# calls it through scipy.linalg.cython_blas, and threadpoolctl only limits what is loaded.
import scipy.linalg.cython_blas  # noqa: F401  (imported for its side effect)

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import threadpoolctl

_EPS32 = float(np.finfo(np.float32).eps)  # 1.19e-7
_EPS64 = float(np.finfo(np.float64).eps)  # 2.22e-16

#: rtol/atol for comparing a kernel's output in ``dtype`` with the float64 reference
#: computed from the same (dtype-cast) inputs. Test data are scaled so outputs are O(1).
#: For "gemm" the atol is per unit of the inner dimension k: ``tol`` multiplies it by k.
TOLERANCES = {
    np.float32: {
        # a few float32 ulps; atol for the cancellation in 1 - a*a and a*(1 - a) near 0
        "elementwise": dict(rtol=2e-6, atol=1e-6),
        # k-term float32 dot products: error bound grows like k * eps32 (Higham's gamma_k)
        "gemm": dict(rtol=1e-5, atol=_EPS32),
        # float64 accumulator rounded once to float32 on the store: half an ulp
        "sum": dict(rtol=_EPS32, atol=1e-12),
    },
    np.float64: {
        # a few float64 ulps (tanh, exp and log1p are not correctly rounded)
        "elementwise": dict(rtol=1e-12, atol=1e-14),
        # k-term float64 dot products, same k * eps bound as for float32
        "gemm": dict(rtol=1e-12, atol=_EPS64),
        # block-ordered vs NumPy's pairwise summation of ~1e3 terms of order 1
        "sum": dict(rtol=1e-13, atol=1e-12),
    },
}


def tolerance(dtype, kind="elementwise", k=1):
    """``dict(rtol=..., atol=...)`` for ``np.testing.assert_allclose``.

    kind: "elementwise" (one rounding per element), "gemm" (a BLAS product with inner
    dimension ``k``: atol scaled by k) or "sum" (a column sum accumulated in float64).
    """
    entry = dict(TOLERANCES[np.dtype(dtype).type][kind])
    if kind == "gemm":
        entry["atol"] *= k
    return entry


@pytest.fixture
def tol():
    """The helper ``tolerance``, as ``tol(dtype, kind="elementwise"|"gemm"|"sum", k=1)``.

    A fixture rather than ``from conftest import ...``: with several conftest.py files
    and no __init__.py, the module named ``conftest`` is whichever pytest loaded last.
    """
    return tolerance


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    """The two float dtypes every kernel supports."""
    return request.param


@pytest.fixture
def rng():
    """A fresh seeded generator per test, so tests do not depend on their order."""
    return np.random.default_rng(0)


@pytest.fixture(scope="session", autouse=True)
def _blas_threads_fixed():
    """One BLAS thread for the whole session: GEMM bits depend on the BLAS thread
    count (STYLE 2.7, item 4), and "same bits for 1 or 2 Numba threads" needs it held."""
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        yield


@pytest.fixture
def fresh_python():
    """``run(code, cache_dir)``: runs ``code`` in a new Python process, at the project's
    root, with ``cache_dir`` as its Numba cache (``NUMBA_NN_CACHE_DIR``); returns the
    JSON its last output line prints."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def run(code, cache_dir):
        env = dict(os.environ, NUMBA_NN_CACHE_DIR=str(cache_dir))
        env.pop("NUMBA_CACHE_DIR", None)
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])
    return run
