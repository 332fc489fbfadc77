"""GEMM for the kernels: C = alpha * op(A) @ op(B) + beta * C through CBLAS.

Jitted code calls the C symbols ``numba_nn_sgemm`` and ``numba_nn_dgemm``, which this
module points, at import, at the ``cblas_?gemm`` of one BLAS library (the backend):

- ``"mkl"``: Intel oneMKL's ``libmkl_rt``, when the ``mkl`` wheel is installed
  (``pip install "numba-nn[mkl]"``). On a 2-core Intel Xeon (AVX-512) its single-thread
  SGEMM ran 1.15-2x faster than OpenBLAS on a training step's shapes (the most at small
  batches).
- ``"openblas"``: the OpenBLAS bundled with SciPy (``scipy_cblas_?gemm``), the library
  Numba's own ``np.dot`` uses. Always there, since Numba needs SciPy for ``np.dot``.

The default is oneMKL whenever it is installed, and OpenBLAS otherwise, by measurement:
on a 2-core Intel Xeon (AVX-512) oneMKL's single-thread SGEMM ran 1.15-2x faster on a
training step's shapes; on a 2-core AMD EPYC (Zen 4) a training epoch with oneMKL ran
1.03-1.56x faster than with OpenBLAS on two threads and within a few percent on one
(README, "Threads and BLAS"). ``NUMBA_NN_BLAS=openblas`` (or ``mkl``) in the
environment before the first import chooses explicitly. Because the symbol is resolved
when a cached kernel is loaded, not when it is compiled, the on-disk Numba cache is valid
for either backend.

Reproducibility: both libraries give the same bits run to run for a fixed BLAS thread
count; MKL is put in conditional numerical reproducibility mode (``MKL_CBWR_AUTO``)
first, so its result does not depend on the arrays' memory alignment either. The two
backends round differently from each other.
"""
import ctypes
import ctypes.util
import glob
import os
import platform
import sys

import llvmlite.binding as llvm
import numpy as np
import scipy
from numba import njit, types
from numba.extending import overload

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_MKL_INTERFACE_LP64 = 0   # 32-bit integers, as the signatures below declare
_MKL_CBWR_AUTO, _MKL_CBWR_SUCCESS = 2, 0


def _mkl_library():
    names = sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))
    found = ctypes.util.find_library("mkl_rt")
    for name in names + ([found] if found else []):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        # Another user of the process may have set the ILP64 interface already; then
        # our 32-bit integer calls would be wrong, so MKL is not used.
        if lib.MKL_Set_Interface_Layer(_MKL_INTERFACE_LP64) != _MKL_INTERFACE_LP64:
            continue
        if lib.MKL_CBWR_Set(_MKL_CBWR_AUTO) != _MKL_CBWR_SUCCESS:
            continue
        return lib, "cblas_sgemm", "cblas_dgemm", name
    return None


def _openblas_library():
    import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's OpenBLAS)
    import threadpoolctl
    paths = [p["filepath"] for p in threadpoolctl.threadpool_info()
             if p["internal_api"] == "openblas" and "scipy" in p["filepath"]]
    paths += sorted(glob.glob(os.path.join(os.path.dirname(scipy.__file__), os.pardir,
                                           "scipy.libs", "libscipy_openblas*")))
    for path in paths:
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_cblas_", "cblas_"):
            if hasattr(lib, prefix + "sgemm") and hasattr(lib, prefix + "dgemm"):
                return lib, prefix + "sgemm", prefix + "dgemm", path
    return None


def cpu_vendor():
    """The x86 vendor string ("GenuineIntel", "AuthenticAMD", ...), or "" if unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    name = platform.processor()   # Windows: "... GenuineIntel" / "... AuthenticAMD"
    for vendor in ("GenuineIntel", "AuthenticAMD"):
        if vendor in name:
            return vendor
    return ""


def _register():
    wanted = os.environ.get("NUMBA_NN_BLAS", "").strip().lower()
    if wanted not in ("", "mkl", "openblas"):
        raise ImportError(f"NUMBA_NN_BLAS must be 'mkl' or 'openblas'; got {wanted!r}.")
    found, backend = None, None
    if wanted in ("", "mkl"):
        found, backend = _mkl_library(), "mkl"
        if found is None and wanted == "mkl":
            raise ImportError("NUMBA_NN_BLAS=mkl, but no usable libmkl_rt was found "
                              "(pip install mkl).")
    if found is None:
        found, backend = _openblas_library(), "openblas"
    if found is None:
        raise ImportError("No CBLAS found: neither oneMKL (pip install mkl) nor SciPy's "
                          "bundled OpenBLAS exports cblas_sgemm/cblas_dgemm.")
    lib, sname, dname, path = found
    for ours, theirs in (("numba_nn_sgemm", sname), ("numba_nn_dgemm", dname)):
        llvm.add_symbol(ours, ctypes.cast(getattr(lib, theirs), ctypes.c_void_p).value)
    return backend, path, lib


BACKEND, LIBRARY_PATH, _lib = _register()


def set_thread_local_threads(n):
    """Use ``n`` BLAS threads for GEMMs called from this OS thread.

    oneMKL keeps its thread count per OS thread: a thread started after
    ``threadpoolctl`` (or ``nn.set_num_threads``) set it gets MKL's default, and with
    it other bits. OpenBLAS's count is process-wide, so there is nothing to do.
    """
    if BACKEND == "mkl":
        _lib.MKL_Set_Num_Threads_Local(int(n))

_i = types.int32


def _cblas_signature(real):
    ptr = types.CPointer(real)
    return types.void(_i, _i, _i, _i, _i, _i, real, ptr, _i, ptr, _i, real, ptr, _i)


_sgemm = types.ExternalFunction("numba_nn_sgemm", _cblas_signature(types.float32))
_dgemm = types.ExternalFunction("numba_nn_dgemm", _cblas_signature(types.float64))


def _xgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    raise NotImplementedError  # jitted code only: see the overload below


@overload(_xgemm)
def _xgemm_impl(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    if A.dtype == types.float32:
        def impl(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
            _sgemm(_ROW_MAJOR, ta, tb, m, n, k, np.float32(alpha), A.ctypes, lda,
                   B.ctypes, ldb, np.float32(beta), C.ctypes, ldc)
        return impl
    if A.dtype == types.float64:
        def impl(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
            _dgemm(_ROW_MAJOR, ta, tb, m, n, k, np.float64(alpha), A.ctypes, lda,
                   B.ctypes, ldb, np.float64(beta), C.ctypes, ldc)
        return impl


@njit(cache=True, inline="always")
def _layout(M, trans):
    # (CBLAS transpose code, leading dimension) of a matrix with one unit stride: a
    # row-major M is passed as is; a column-major M (such as X.T) is its row-major
    # transpose with the flag flipped.
    it = M.itemsize
    s0, s1 = M.strides
    rows, cols = M.shape
    if s1 == it and s0 % it == 0 and s0 >= max(cols, 1) * it:
        return (_TRANS if trans else _NO_TRANS), s0 // it
    if s0 == it and s1 % it == 0 and s1 >= max(rows, 1) * it:
        return (_NO_TRANS if trans else _TRANS), s1 // it
    raise ValueError("gemm: each matrix needs one unit stride (a row- or column-major "
                     "block, such as a C-contiguous array or its .T)")


@njit(cache=True)
def gemm(A, B, C, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """C = alpha * op(A) @ op(B) + beta * C, op(M) = M.T when its trans flag is set.

    A, B, C 2-D arrays of one dtype (float32 or float64), each with one unit stride
    (C-contiguous, a row range of one, or the ``.T`` of one; C's columns must be the
    unit stride); op(A) (m, k), op(B) (k, n), C (m, n) written (read too when
    beta != 0). Shapes are not checked here (the ``nn`` API guarantees them). With k
    zero, C = beta * C, as BLAS defines it. Dimensions must be below 2**31.

    Notes: one call of the backend's CBLAS ``?gemm`` (see ``BACKEND``); its threads
    are BLAS's, set with ``nn.set_num_threads``.
    """
    m, n = C.shape
    if m == 0 or n == 0:
        return
    k = A.shape[0] if trans_a else A.shape[1]
    if k == 0:
        # Plain loops, the same values as ``C[...] = 0.0`` / ``C[...] = C * beta`` (the
        # product in beta's type, rounded to C's): an array assignment compiles Numba's
        # broadcasting error message, string formatting that took seconds of a cold start.
        zero = C.dtype.type(0.0)
        for i in range(m):
            for j in range(n):
                C[i, j] = zero if beta == 0.0 else C[i, j] * beta
        return
    ta, lda = _layout(A, trans_a)
    tb, ldb = _layout(B, trans_b)
    if C.strides[1] != C.itemsize or C.strides[0] < n * C.itemsize:
        raise ValueError("gemm: C must be row-major (unit column stride)")
    _xgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, C.strides[0] // C.itemsize)
