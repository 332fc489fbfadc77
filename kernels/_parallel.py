"""When kernels go parallel, the row blocks their sums use, and their two builds.

A kernel's loop over rows (or blocks, or elements) is written once, with ``prange``;
``serial_and_parallel`` compiles it serial and parallel, and the public kernel takes the
parallel build from ``PARALLEL_MIN_SIZE`` elements. ``prange`` is ``range`` in a build
without ``parallel=True``: the serial build is the machine code of that loop with ``range``.

Numba checks a cached kernel against its own source file only and freezes the globals it
reads when it compiles: after changing a value below, clear the Numba cache (the folder
``kernels.CACHE_DIR``), or kernels in other files keep the old one.
"""
import types

from numba import njit

#: Element count from which kernels take their parallel build. Below it the thread
#: launch (about 10 us here) costs more than it saves.
PARALLEL_MIN_SIZE = 1 << 16

#: Rows per block of ``_reduce.column_sums`` and the dense layer's bias gradient. 64 lets
#: a batch of 256 split into four parallel blocks; a change changes result bits, so it is
#: fixed here once.
BLOCK_ROWS = 64

#: Rows per statistics block of BatchNorm: each block's sums (four-row groups, in row
#: order) go to their own scratch rows and the blocks are folded in order, whatever the
#: thread count; a block of r rows loses at most about log2(r + 1) of float64's 53 bits
#: in its shifted variance (``kernels.batchnorm``). A change changes result bits.
STAT_ROWS = 128

#: Rows per chunk of BatchNorm's elementwise passes. Chunks run last to first (the rows
#: the previous pass read last are still in cache), the rows of a chunk first to last (a
#: backward walk over rows of one page each defeats the hardware prefetcher: 3x slower).
#: No result depends on it.
ROW_CHUNK = 32


def _renamed(py_func, name):
    copy = types.FunctionType(py_func.__code__, py_func.__globals__, name,
                              py_func.__defaults__, py_func.__closure__)
    copy.__qualname__ = name
    return copy


def serial_and_parallel(py_func, **options):
    """``(serial, parallel)``: ``py_func``, a loop written with ``prange``, compiled by
    ``njit(cache=True, **options)`` and by ``njit(cache=True, parallel=True, **options)``.

    Each build compiles a copy of ``py_func`` named ``<name>_serial`` or
    ``<name>_parallel``: one function compiled both ways would share one cache entry
    (Numba keys it by qualified name and first line, not by its options), so one build
    would run the other's machine code. Assign the builds to those names.
    """
    serial = _renamed(py_func, py_func.__name__ + "_serial")
    parallel = _renamed(py_func, py_func.__name__ + "_parallel")
    return (njit(cache=True, **options)(serial),
            njit(cache=True, parallel=True, **options)(parallel))
