"""Numba kernels of the library: pure functions over arrays with explicit outputs.

Every kernel takes C-contiguous float32 or float64 arrays (one dtype per call),
writes its results into arrays the caller passes, and can be called from Python or
from the caller's own ``@njit`` code. The API in ``nn`` validates shapes and dtypes
before calling them; called directly, a kernel trusts its arguments.

Threads: a training step alternates Numba's parallel kernels (OpenMP) and the GEMMs'
BLAS threads, and how idle threads wait decides its speed on a small machine. With
OpenBLAS (a pthreads pool of its own beside Numba's GNU OpenMP, libgomp), libgomp's
idle workers spin by default and starve OpenBLAS's threads (an epoch 10-40x slower on
2 cores), so importing ``kernels`` sets ``OMP_WAIT_POLICY=PASSIVE``: they sleep at once.
With oneMKL it sets nothing: MKL loads Intel's OpenMP (libiomp5) at import, and Numba's
OpenMP calls bind to it too (it provides libgomp's entry points), so there is one pool;
its default wait (spin up to ``KMP_BLOCKTIME``, 200 ms, then sleep) measured as fast
as the best setting found, while PASSIVE put it to sleep after every
small GEMM (2-3x slower at batch 32 on 2 cores). See the README, "Threads and OpenMP
runtimes".

It is set only when the environment has none of ``OMP_WAIT_POLICY``,
``GOMP_SPINCOUNT``, ``KMP_BLOCKTIME``, ``KMP_LIBRARY`` (the user's choice wins), and
``NUMBA_NN_THREAD_POLICY=none`` turns it off. libgomp reads it when it loads, at the
process's first Numba parallel launch: a process that launched one before importing
``kernels`` (its own ``prange`` code, ``numba.set_num_threads`` or ``get_num_threads``)
keeps spinning workers, and the import warns. ``THREAD_POLICY`` holds what was set.
Thread counts are left alone (``nn.set_num_threads`` sets them).

GEMMs go through ``kernels.blas.gemm``: oneMKL when the ``mkl`` wheel is installed,
SciPy's OpenBLAS otherwise (``BLAS_BACKEND`` says which; see ``kernels.blas``).
Mixed precision GEMMs (bfloat16 products, float32 sums) go through
``kernels.bf16.gemm_bf16`` (``BF16_BACKEND`` says how: see ``kernels.bf16``).

Numba caches the compiled kernels in ``CACHE_DIR``, a per-user folder outside the
package (``$NUMBA_NN_CACHE_DIR``, else ``~/.cache/numba-nn/py3.11-numba...``; see
``kernels._cache``), so that uninstalling leaves nothing in site-packages and a
read-only install still caches.
"""
import os

#: {variable: value} that importing ``kernels`` put in ``os.environ`` (the thread
#: policy above): ``{"OMP_WAIT_POLICY": "PASSIVE"}`` with OpenBLAS, else empty.
THREAD_POLICY = {}
_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "KMP_LIBRARY")


def _gomp_loaded():
    """Whether GNU OpenMP is loaded already (then it has read its environment)."""
    try:
        import ctypes
        ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except (OSError, AttributeError):  # not loaded, or not Linux
        return False
    return True


def _thread_policy(backend):
    """Apply the policy above for ``backend``, once ``kernels.blas`` has chosen it (and
    before Numba's first parallel launch loads libgomp)."""
    if (os.environ.get("NUMBA_NN_THREAD_POLICY", "").strip().lower() == "none"
            or backend != "openblas" or any(v in os.environ for v in _WAIT_VARIABLES)):
        return
    os.environ["OMP_WAIT_POLICY"] = THREAD_POLICY["OMP_WAIT_POLICY"] = "PASSIVE"
    if _gomp_loaded():
        import warnings
        warnings.warn(
            "GNU OpenMP (libgomp) was loaded before `import kernels` (by a Numba parallel "
            "call, numba.set_num_threads or numba.get_num_threads), so "
            "OMP_WAIT_POLICY=PASSIVE comes too late for it: its spinning workers can slow "
            "training with OpenBLAS many times over on few cores. Import nn (or kernels) "
            "first, or set OMP_WAIT_POLICY in the environment before starting Python.",
            RuntimeWarning, stacklevel=3)


from . import _cache

CACHE_DIR = _cache.folder()
# Only the kernels' decorations see this folder: Numba fixes each function's cache
# path when it decorates it.
with _cache.caching_in(CACHE_DIR):
    from . import blas
    from .blas import BACKEND as BLAS_BACKEND, gemm
    from . import bf16
    from .bf16 import BF16_BACKEND, gemm_bf16, round_to_bf16, to_bf16_bits
    from ._parallel import BLOCK_ROWS, PARALLEL_MIN_SIZE
    from ._reduce import column_sums, n_blocks, ordered_sum
    from .activations import (
        ACT_IDENTITY, ACT_LEAKY_RELU, ACT_RELU, ACT_SIGMOID, ACT_TANH, ACTIVATION_CODES,
        LEAKY_RELU_SLOPE, activation_backward, activation_forward,
    )
    from .dense import dense_backward, dense_forward, weight_penalty
    from .losses import (
        count_binary_correct, count_correct, mean_squared_error, sigmoid_binary_cross_entropy,
        softmax, softmax_cross_entropy, weight_rows,
    )
    from .optim import adam_step, momentum_step, rmsprop_step, sgd_step
    from ._random import uniform_from_counter
    from .batchnorm import batchnorm_backward, batchnorm_forward_infer, batchnorm_forward_train
    from .dropout import dropout_backward, dropout_forward
    from .augment import add_gaussian_noise, image_draws, shift_flip_images
    from .sparse import csr_dense_backward, csr_dense_forward, csr_take_rows, csr_transpose
    from . import plan  # noqa: F401  (fit's compiled step: cached in CACHE_DIR too)
    from ._parallel import parallel_arg

_thread_policy(blas.BACKEND)  # the policy above, for the backend just chosen

__all__ = [
    "ACT_IDENTITY", "ACT_LEAKY_RELU", "ACT_RELU", "ACT_SIGMOID", "ACT_TANH",
    "ACTIVATION_CODES", "BLAS_BACKEND", "BLOCK_ROWS", "LEAKY_RELU_SLOPE", "PARALLEL_MIN_SIZE",
    "activation_backward", "activation_forward", "column_sums", "count_binary_correct",
    "count_correct", "dense_backward",
    "dense_forward", "gemm", "mean_squared_error", "n_blocks", "ordered_sum", "sgd_step",
    "sigmoid_binary_cross_entropy", "softmax", "softmax_cross_entropy", "weight_penalty",
]
__all__ += ["adam_step", "momentum_step", "rmsprop_step"]
__all__ += [
    "batchnorm_backward", "batchnorm_forward_infer", "batchnorm_forward_train",
    "dropout_backward", "dropout_forward", "uniform_from_counter",
]
__all__ += ["add_gaussian_noise", "image_draws", "shift_flip_images", "weight_rows"]
__all__ += ["CACHE_DIR"]
__all__ += ["BF16_BACKEND", "gemm_bf16", "round_to_bf16", "to_bf16_bits"]
__all__ += ["parallel_arg"]
__all__ += ["csr_dense_backward", "csr_dense_forward", "csr_take_rows", "csr_transpose"]
