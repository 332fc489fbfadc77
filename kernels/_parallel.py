"""When kernels go parallel, the row blocks their sums use, and their two builds.

A kernel's loop over rows (or blocks, or elements) is written once, with ``prange``;
``serial_and_parallel`` compiles it serial and parallel, and the public kernel takes the
parallel build from ``PARALLEL_MIN_SIZE`` elements. ``prange`` is ``range`` in a build
without ``parallel=True``: the serial build is the machine code of that loop with ``range``.
The serial build is inlined into the public kernel (one compilation less, and the loop's
code optimized once instead of twice); the parallel build is a function of its own.

Every such public kernel takes a last argument ``parallel``: True (the default) takes the
parallel build from ``PARALLEL_MIN_SIZE`` elements; False never does; None never does and
leaves the parallel build uncompiled. Numba prunes a branch on ``parallel is not None`` for
an argument typed None before it types the body, so the call to the parallel build is
gone from that compilation (the parallel builds were a third of a cold start's compile
time). The public kernels write it as ``if parallel is not None:`` alone, the call inside.
``parallel_arg(n)`` is the argument the ``nn`` API passes: True from the threshold, None
below it, so a run that never reaches the threshold never compiles a parallel build.

From jitted code the choice is made by the argument's type, not its value: pass None, or
forward an argument of your own function that Python called with None or a bool (typed
none or bool: the signatures ``nn`` compiles, so they are shared). A variable that is
None on one path and a bool on another is an Optional, which prunes nothing; a literal
``True`` works but compiles a signature of its own (``np.bool_(True)`` is a plain bool).

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
#: The dense forward's bias-activation pass works in chunks of as many rows (first to
#: last). No result depends on it.
ROW_CHUNK = 32


def _renamed(py_func, name):
    copy = types.FunctionType(py_func.__code__, py_func.__globals__, name,
                              py_func.__defaults__, py_func.__closure__)
    copy.__qualname__ = name
    return copy


def serial_and_parallel(py_func, **options):
    """``(serial, parallel)``: ``py_func``, a loop written with ``prange``, compiled by
    ``njit(cache=True, inline="always", **options)`` and by ``njit(cache=True,
    parallel=True, no_cfunc_wrapper=True, **options)``.

    The serial build is inlined into the jitted code that calls it (the public kernel),
    where ``prange`` is ``range``; called from Python it compiles on its own. The
    parallel build skips the C-callback wrapper (for first-class function values, which
    no kernel uses), which costs compile time.

    Each build compiles a copy of ``py_func`` named ``<name>_serial`` or
    ``<name>_parallel``: one function compiled both ways would share one cache entry
    (Numba keys it by qualified name and first line, not by its options), so one build
    would run the other's machine code. Assign the builds to those names.
    """
    serial = _renamed(py_func, py_func.__name__ + "_serial")
    parallel = _renamed(py_func, py_func.__name__ + "_parallel")
    return (njit(cache=True, inline="always", **options)(serial),
            njit(cache=True, parallel=True, no_cfunc_wrapper=True, **options)(parallel))


def parallel_arg(n_elements):
    """The ``parallel`` argument of a kernel call whose array has ``n_elements`` elements:
    True from ``PARALLEL_MIN_SIZE`` (the kernel takes its parallel build), else None (it
    runs serial and its parallel build is not compiled for that call)."""
    return True if n_elements >= PARALLEL_MIN_SIZE else None
