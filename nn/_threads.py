"""Thread counts of the two pools a training step uses: Numba's and BLAS's.

The GEMMs run in the library ``kernels.blas`` bound (oneMKL, or SciPy's bundled
OpenBLAS), loaded when ``kernels`` is imported; threadpoolctl limits only libraries
already loaded, so ``scipy.linalg.cython_blas`` (SciPy's OpenBLAS, which any ``np.dot``
in user Numba code uses) is imported here first too.

Counts only: how idle threads wait (the OpenMP runtimes' environment) is decided once,
when ``kernels`` is imported (``kernels.THREAD_POLICY``). Nothing here runs unless the
user calls it: ``fit`` and inference keep the counts the process has (Numba's default is
every core, BLAS's its own default) until ``set_num_threads`` is called. With oneMKL,
Numba's OpenMP calls run on the Intel OpenMP that MKL loaded, one pool for both; with
OpenBLAS they are two pools that take turns (Numba's sleeping between kernels).
"""
import numba
import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's OpenBLAS for threadpoolctl)
import threadpoolctl

import kernels.blas

from ._validation import check_scalar

_blas_limiter = None
#: The count ``set_num_threads`` chose (None until it is called).
_chosen = None


def set_num_threads(n):
    """Use ``n`` threads in Numba's parallel kernels and in BLAS (the GEMMs).

    BLAS results are the same bits run to run for a fixed BLAS thread count; Numba
    kernels are the same bits for any thread count.
    """
    global _blas_limiter, _chosen
    n = check_scalar("n", n, where="set_num_threads", low=1,
                     high=numba.config.NUMBA_NUM_THREADS, integer=True)
    numba.set_num_threads(n)
    _blas_limiter = threadpoolctl.threadpool_limits(n, user_api="blas")
    _chosen = n
    return n


def use_chosen_threads():
    """Give the calling OS thread the count ``set_num_threads`` chose.

    Numba's thread count and oneMKL's are per OS thread: a thread started later (a
    web server's, a ``ThreadPoolExecutor``'s) would otherwise run with the defaults.
    ``fit`` and inference call this first; a no-op until ``set_num_threads`` is called.
    """
    n = _chosen
    if n is None:
        return
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)
    kernels.blas.set_thread_local_threads(n)


def get_num_threads():
    """``{"numba": ..., "blas": ...}``: the thread counts in use."""
    blas = [p["num_threads"] for p in threadpoolctl.threadpool_info()
            if p["user_api"] == "blas"]
    return {"numba": numba.get_num_threads(), "blas": max(blas) if blas else 1}
