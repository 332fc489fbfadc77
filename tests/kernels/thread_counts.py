"""The thread-count check of the kernel tests: a kernel's bytes with 1 and 2 Numba
threads and with its serial build (parallel=None) must be the same (``at_threads``, the
fixture that runs a function with n threads, is in this folder's conftest.py)."""
import numba
import numpy as np
import pytest


def bits(results):
    return [np.asarray(r).tobytes() for r in results]


def assert_same_bits_1_and_2_threads(at_threads, call):
    """call(parallel) makes fresh outputs, runs a kernel with that ``parallel`` argument
    and returns every output and the returned value; the bytes must not depend on the
    thread count, nor on parallel=None (the public kernel's serial build, inlined)."""
    one = at_threads(1, call)
    for r in one:
        assert not np.isnan(np.asarray(r, dtype=np.float64)).any()  # all written
    assert bits(call(None)) == bits(one)
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one Numba thread available (NUMBA_NUM_THREADS < 2)")
    two = at_threads(2, call)
    assert bits(one) == bits(two)
