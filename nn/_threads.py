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
import contextlib

import numba
import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's OpenBLAS for threadpoolctl)
import threadpoolctl

import kernels.blas

from ._validation import check_scalar

_blas_limiter = None
#: The count ``set_num_threads`` chose (None until it is called).
_chosen = None


def numba_threads(n):
    """Numba's share when a step has ``n`` threads: all n with oneMKL (its OpenMP pool
    is Numba's too); n // 2, at least 1, with OpenBLAS, whose own pthreads pool takes
    turns with Numba's sleeping OpenMP workers: waking them for each elementwise kernel
    cost more than the kernel's second thread gave (2-core AMD EPYC, OpenBLAS: 1 Numba
    and 2 BLAS threads ran the BatchNorm+Dropout model 1.34x faster than 2 and 2 at
    batch 256 and 1024, the MLP 1.0-1.05x; README, "Threads and BLAS"). That holds for
    a precision="bf16" model too, whose GEMMs run on Numba's threads: 2 Numba threads
    ran its epoch 0.95x as fast as 1 (BatchNorm model, batch 256, OpenBLAS)."""
    return n if kernels.blas.BACKEND == "mkl" else max(1, n // 2)


def set_num_threads(n):
    """Use ``n`` threads: ``n`` in BLAS (the GEMMs) and ``numba_threads(n)`` in Numba's
    parallel kernels (all n with oneMKL, n // 2 with OpenBLAS).

    BLAS results are the same bits run to run for a fixed BLAS thread count; Numba
    kernels are the same bits for any thread count.
    """
    global _blas_limiter, _chosen
    n = check_scalar("n", n, where="set_num_threads", low=1,
                     high=numba.config.NUMBA_NUM_THREADS, integer=True)
    numba.set_num_threads(numba_threads(n))
    _blas_limiter = threadpoolctl.threadpool_limits(n, user_api="blas")
    _chosen = n
    return n


def use_chosen_threads():
    """Give the calling OS thread the counts ``set_num_threads`` chose.

    Numba's thread count and oneMKL's are per OS thread: a thread started later (a
    web server's, a ``ThreadPoolExecutor``'s) would otherwise run with the defaults.
    Inference calls this first; a no-op until ``set_num_threads`` is called.
    """
    n = _chosen
    if n is None:
        return
    if numba.get_num_threads() != numba_threads(n):
        numba.set_num_threads(numba_threads(n))
    kernels.blas.set_thread_local_threads(n)


@contextlib.contextmanager
def training_threads():
    """``fit``'s counts, for the duration of the call: ``set_num_threads``'s choice, or
    without one the process's counts, with Numba's share ``numba_threads(n)`` (Numba's
    count is per OS thread, so the caller's own parallel code keeps its count)."""
    use_chosen_threads()   # with a choice, the counts are set: nothing more to do
    before = numba.get_num_threads()
    if _chosen is None:
        numba.set_num_threads(numba_threads(before))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def get_num_threads():
    """``{"numba": ..., "blas": ...}``: the thread counts in use."""
    blas = [p["num_threads"] for p in threadpoolctl.threadpool_info()
            if p["user_api"] == "blas"]
    return {"numba": numba.get_num_threads(), "blas": max(blas) if blas else 1}
