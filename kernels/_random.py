"""The one counter-based hash: ``(seed, step, index) -> uniform in [0, 1)``.

Every random draw inside a kernel (dropout masks, augmentation) is a pure function of
the layer's seed, its step counter and the element's flat index, so threads cannot
disagree and a mask is the same bytes for any Numba thread count and on every run.

After changing this file, clear the Numba cache (the folder ``kernels.CACHE_DIR``):
functions that inline it are cached with the old body.
"""
import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def uniform_from_counter(seed, step, index):
    """A uniform float64 in [0, 1) from (seed, step, index); splitmix64 finalizer.

    seed, step, index : non-negative integers (taken modulo 2**64).

    Notes: every operand is wrapped in ``np.uint64``; a ``uint64 + int64`` mix is typed
    int64 by Numba, which would turn ``>>`` into an arithmetic shift (STYLE 2.7, item 5).
    The top 53 bits of the hash give the float, so every value is a multiple of 2**-53.
    """
    z = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)) \
        ^ (np.uint64(step) * np.uint64(0xD1B54A32D192ED03)) ^ np.uint64(index)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)
