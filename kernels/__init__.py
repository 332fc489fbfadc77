"""Numba kernels of the library: pure functions over arrays with explicit outputs.

Every kernel takes C-contiguous float32 or float64 arrays (one dtype per call),
writes its results into arrays the caller passes, and can be called from Python or
from the caller's own ``@njit`` code. The API in ``nn`` validates shapes and dtypes
before calling them; called directly, a kernel trusts its arguments.

Threads: a training step alternates Numba's parallel kernels (GNU OpenMP, libgomp)
and the GEMMs' BLAS threads, and how idle threads wait decides its speed on a small
machine (see ``THREAD_POLICY``). Importing ``kernels`` sets, each only where the
environment does not already have it and by the backend ``kernels.blas`` chooses:

- OpenBLAS: ``OMP_WAIT_POLICY=PASSIVE``. Its pthreads are a second pool; libgomp's
  idle workers spin by default and starved them (an epoch 10-40x slower on 2 cores),
  so they sleep at once instead.
- oneMKL: ``MKL_THREADING_LAYER=GNU`` and ``GOMP_SPINCOUNT=100000``. MKL then runs
  its GEMMs on libgomp too, one pool for both, whose idle workers spin briefly (about
  a millisecond) before sleeping: no second pool to starve, and no wake-up after every
  small GEMM (which made Intel's OpenMP under PASSIVE 2-3x slower at batch 32).
  Should MKL run on Intel's OpenMP anyway (``MKL_THREADING_LAYER=INTEL``, or MKL
  loaded by other code first), no wait variable is set: both runtimes' defaults
  measured best there.

No wait variable (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``, ``KMP_BLOCKTIME``,
``KMP_LIBRARY``) is set when the user set any of them, and
``NUMBA_NN_THREAD_POLICY=none`` sets nothing at all. The runtimes read these when
they load, so they apply when ``kernels`` is imported before the process's first
OpenMP parallel region (its own Numba ``prange`` code included). ``THREAD_POLICY``
holds what was set. Thread counts are not touched (``nn.set_num_threads`` sets them).

GEMMs go through ``kernels.blas.gemm``: oneMKL when the ``mkl`` wheel is installed,
SciPy's OpenBLAS otherwise (``BLAS_BACKEND`` says which; see ``kernels.blas``).

Numba caches the compiled kernels in ``CACHE_DIR``, a per-user folder outside the
package (``$NUMBA_NN_CACHE_DIR``, else ``~/.cache/numba-nn/py3.11-numba...``; see
``kernels._cache``), so that uninstalling leaves nothing in site-packages and a
read-only install still caches.
"""
import os

#: {variable: value} that importing ``kernels`` put in ``os.environ`` (the thread and
#: OpenMP policy above); empty when the user's own settings left nothing to set.
THREAD_POLICY = {}
_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "KMP_LIBRARY")
#: libgomp's spins before an idle worker sleeps, with oneMKL: about 1 ms (libgomp's
#: own default is 300000, 3e10 under ACTIVE, 0 under PASSIVE).
GOMP_SPINCOUNT_MKL = "100000"
_MKL_THREADING_INTEL = 0


def _policy_set(name, value):
    if name not in os.environ:
        os.environ[name] = THREAD_POLICY[name] = value


def _policy_unset(name):
    if THREAD_POLICY.pop(name, None) is not None:
        del os.environ[name]


def _gomp_loaded():
    """Whether GNU OpenMP is loaded already (then it has read its environment)."""
    try:
        import ctypes
        ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except (OSError, AttributeError):  # not loaded, or not Linux
        return False
    return True


_before = {}


def _thread_policy(backend=None):
    """Called with ``backend`` None before ``kernels.blas`` loads a BLAS: set what
    oneMKL needs (MKL and, through it, libgomp read it as they load). Called again with
    the backend chosen: keep what that backend needs, undo the rest (with OpenBLAS,
    libgomp has not loaded yet: Numba loads it at its first parallel launch)."""
    if os.environ.get("NUMBA_NN_THREAD_POLICY", "").strip().lower() == "none":
        return
    if backend is None:
        _before["user_waits"] = any(v in os.environ for v in _WAIT_VARIABLES)
        _before["gomp_loaded"] = _gomp_loaded()
        if os.environ.get("NUMBA_NN_BLAS", "").strip().lower() != "openblas":
            _policy_set("MKL_THREADING_LAYER", "GNU")
            if not _before["user_waits"]:
                _policy_set("GOMP_SPINCOUNT", GOMP_SPINCOUNT_MKL)
    elif backend != "mkl":
        _policy_unset("MKL_THREADING_LAYER")
        _policy_unset("GOMP_SPINCOUNT")
        if not _before["user_waits"]:
            _policy_set("OMP_WAIT_POLICY", "PASSIVE")
            if _before["gomp_loaded"]:
                import warnings
                warnings.warn(
                    "GNU OpenMP (libgomp) was loaded before `import kernels` (by Numba's "
                    "first parallel call, numba.set_num_threads or get_num_threads), so "
                    "OMP_WAIT_POLICY=PASSIVE comes too late: its spinning workers can "
                    "slow training with OpenBLAS many times over on few cores. Import nn "
                    "(or kernels) first, or set OMP_WAIT_POLICY before starting Python.",
                    RuntimeWarning, stacklevel=3)
    elif blas._lib.MKL_Set_Threading_Layer(-1) == _MKL_THREADING_INTEL:
        # MKL on Intel's OpenMP after all (the user's choice, or MKL set up by other
        # code first): the runtimes' own defaults, which measured best with it.
        _policy_unset("MKL_THREADING_LAYER")
        _policy_unset("GOMP_SPINCOUNT")


_thread_policy()
from . import _cache

CACHE_DIR = _cache.folder()
# Only the kernels' decorations see this folder: Numba fixes each function's cache
# path when it decorates it.
with _cache.caching_in(CACHE_DIR):
    from . import blas
    from .blas import BACKEND as BLAS_BACKEND, gemm
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
__all__ += ["parallel_arg"]
