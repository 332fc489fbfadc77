"""Numba kernels of the library: pure functions over arrays with explicit outputs.

Every kernel takes C-contiguous float32 or float64 arrays (one dtype per call),
writes its results into arrays the caller passes, and can be called from Python or
from the caller's own ``@njit`` code. The API in ``nn`` validates shapes and dtypes
before calling them; called directly, a kernel trusts its arguments.

Threads: Numba's OpenMP workers spin after each parallel region by default, and on
a small machine they then starve OpenBLAS's threads in the GEMM that follows (a
training step ran 10x slower on 2 cores). Unless the user chose otherwise,
``OMP_WAIT_POLICY=PASSIVE`` is set here, before OpenMP is loaded at the first
parallel launch, so idle workers sleep instead (Intel's OpenMP, which oneMKL uses,
reads the same variable).

GEMMs go through ``kernels.blas.gemm``: oneMKL when the ``mkl`` wheel is installed,
SciPy's OpenBLAS otherwise (``BLAS_BACKEND`` says which; see ``kernels.blas``).

Numba caches the compiled kernels in ``CACHE_DIR``, a per-user folder outside the
package (``$NUMBA_NN_CACHE_DIR``, else ``~/.cache/numba-nn/py3.11-numba...``; see
``kernels._cache``), so that uninstalling leaves nothing in site-packages and a
read-only install still caches.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
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
