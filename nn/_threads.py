"""Thread counts of the two pools a training step uses: Numba's and BLAS's.

The GEMMs run in the library ``kernels.blas`` bound (oneMKL, or SciPy's bundled
OpenBLAS), loaded when ``kernels`` is imported; threadpoolctl limits only libraries
already loaded, so ``scipy.linalg.cython_blas`` (SciPy's OpenBLAS, which any ``np.dot``
in user Numba code uses) is imported here first too.
"""
import numba
import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's OpenBLAS for threadpoolctl)
import threadpoolctl

from ._validation import check_scalar

_blas_limiter = None


def set_num_threads(n):
    """Use ``n`` threads in Numba's parallel kernels and in BLAS (the GEMMs).

    BLAS results are the same bits run to run for a fixed BLAS thread count; Numba
    kernels are the same bits for any thread count.
    """
    global _blas_limiter
    n = check_scalar("n", n, where="set_num_threads", low=1,
                     high=numba.config.NUMBA_NUM_THREADS, integer=True)
    numba.set_num_threads(n)
    _blas_limiter = threadpoolctl.threadpool_limits(n, user_api="blas")
    return n


def get_num_threads():
    """``{"numba": ..., "blas": ...}``: the thread counts in use."""
    blas = [p["num_threads"] for p in threadpoolctl.threadpool_info()
            if p["user_api"] == "blas"]
    return {"numba": numba.get_num_threads(), "blas": max(blas) if blas else 1}
