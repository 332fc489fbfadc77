"""Thread counts of the two pools a training step uses: Numba's and BLAS's.

``np.dot`` inside Numba calls SciPy's bundled OpenBLAS, which threadpoolctl sees
only once ``scipy.linalg.cython_blas`` has loaded it, so it is imported here first.
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
