"""Fixtures of the API tests: small seeded data sets, and an allocation meter.

Helpers are fixtures (factories) rather than importable functions: with several
conftest.py files and no __init__.py, ``import conftest`` would pick whichever
conftest pytest loaded last.
"""
import contextlib
import gc
import tracemalloc

import numpy as np
import pytest
from numba._dispatcher import Dispatcher as _CDispatcher
from numba.core.dispatcher import Dispatcher
from numba.core.runtime import _nrt_python, rtsys


def _blobs(n=60, n_features=3, n_classes=3, seed=0, spread=0.3, dtype=np.float64):
    """Gaussian clusters around well separated centres, classes balanced and interleaved."""
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.standard_normal((n_classes, n_features))
    # push the centres apart so the classes are separable by a small network
    centres += 3.0 * np.eye(n_classes, n_features)
    y = np.arange(n) % n_classes
    X = centres[y] + spread * rng.standard_normal((n, n_features))
    return X.astype(dtype), y.astype(np.int64)


@pytest.fixture
def make_blobs():
    """``make_blobs(n=60, n_features=3, n_classes=3, seed=0, spread=0.3, dtype=float64)``
    -> (X, y): a separable classification problem with integer labels."""
    return _blobs


@pytest.fixture
def blobs():
    """60 rows, 3 features, 3 separable classes (float64 X, int64 y)."""
    return _blobs()


# -- allocation measurement --------------------------------------------------------
#
# What a block of code allocates, seen two ways that between them cover every array:
#
# - NumPy's data allocations, through tracemalloc's NumPy domain
#   (``np.lib.tracemalloc_domain``): np.empty and np.zeros, but also .copy(),
#   .astype(), fancy indexing and ufunc temporaries. tracemalloc keeps the blocks still
#   alive (a snapshot, filtered to that domain) and the peak of all traced memory; a
#   temporary shows only in the peak.
# - Numba's allocations in jitted code, through the NRT's statistics
#   (``rtsys.get_allocation_stats()``): np.empty in a kernel, parfor reduction arrays,
#   arrays a kernel returns. Numba also makes one small MemInfo (an NRT allocation) for
#   every array argument of a call from Python into jitted code; the meter counts those
#   arguments and subtracts them, so ``nrt_allocs`` is what the kernels' code allocates.

_NUMPY_DOMAIN = [tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)]


def _count_arrays(values):
    return sum(_count_arrays(v) if isinstance(v, tuple) else isinstance(v, np.ndarray)
               for v in values)


def _numpy_live():
    """(bytes, blocks) of NumPy data blocks tracemalloc traces now."""
    stats = tracemalloc.take_snapshot().filter_traces(_NUMPY_DOMAIN).statistics("filename")
    return sum(s.size for s in stats), sum(s.count for s in stats)


class Allocations:
    """What the ``with`` block of ``AllocationMeter.measure()`` allocated.

    numpy_bytes, numpy_blocks : NumPy data allocated in the block and still alive at its
        end, less what it freed of older blocks (those made since the test started;
        negative when it freed more than it kept).
    peak : the most traced memory (NumPy data, Python objects and Numba's NRT, which
        allocates through PyMem_RawMalloc) held above the level at the block's start.
    nrt_allocs, nrt_frees : allocations and frees by Numba jitted code, less the MemInfo
        of each array argument passed from Python.
    """

    numpy_bytes = numpy_blocks = peak = nrt_allocs = nrt_frees = None

    def __repr__(self):
        return (f"Allocations(numpy_bytes={self.numpy_bytes}, numpy_blocks="
                f"{self.numpy_blocks}, peak={self.peak}, nrt_allocs={self.nrt_allocs}, "
                f"nrt_frees={self.nrt_frees})")


class StepRecorder:
    """A per-step schedule (``fit(schedule=...)``) returning a constant ``lr`` that
    measures each step: fit calls it at the start of every step, so the interval
    between two calls holds one whole step (gather, forward, loss, backward, update). ``steps`` lists ``(step, peak, nrt_allocs)`` for the
    interval that ends at each call after the first: ``peak`` is the most traced memory
    held above the level at the previous call (what any array made and freed in the
    step adds), ``nrt_allocs`` what jitted code allocated. ``step`` is fit's global step
    count, ``epoch * steps_per_epoch + step``; the interval that ends at an epoch's first
    step also holds the work between epochs. Use inside ``AllocationMeter.measure()``.
    """

    per_step = True

    def __init__(self, meter, lr):
        self.meter, self.lr = meter, lr
        self.steps = []
        self._level = self._nrt = None

    def __call__(self, step):
        peak = tracemalloc.get_traced_memory()[1]
        nrt = self.meter._nrt_net()[0]
        if self._level is not None:
            self.steps.append((step, peak - self._level, nrt - self._nrt))
        tracemalloc.reset_peak()
        self._level = tracemalloc.get_traced_memory()[0]
        self._nrt = self.meter._nrt_net()[0]
        return self.lr


class AllocationMeter:
    """``with meter.measure() as seen: ...`` fills ``seen``, an ``Allocations``;
    ``meter.per_step(lr)`` gives a ``StepRecorder`` for a ``fit`` inside the block."""

    def __init__(self):
        self._arrays_passed = 0

    def per_step(self, lr=0.01):
        return StepRecorder(self, lr)

    def _nrt_net(self):
        """(allocations, frees) by the NRT so far, less the argument MemInfos."""
        stats = rtsys.get_allocation_stats()
        return stats.alloc - self._arrays_passed, stats.free - self._arrays_passed

    @contextlib.contextmanager
    def tracing(self):
        """tracemalloc on (if it was not) for the meter's lifetime: a block's frees of
        arrays made before it count only if those arrays were traced."""
        was_tracing = tracemalloc.is_tracing()
        if not was_tracing:
            tracemalloc.start()
        try:
            yield self
        finally:
            if not was_tracing:
                tracemalloc.stop()

    @contextlib.contextmanager
    def measure(self):
        if not tracemalloc.is_tracing():
            raise RuntimeError("AllocationMeter.measure: use the allocations fixture, "
                               "which traces from the start of the test")
        seen = Allocations()
        base_call = _CDispatcher.__call__

        def counting_call(dispatcher, *args, **kwargs):
            self._arrays_passed += _count_arrays(args) + _count_arrays(kwargs.values())
            return base_call(dispatcher, *args, **kwargs)

        stats_were_on, gc_was_on = _nrt_python.memsys_stats_enabled(), gc.isenabled()
        gc.disable()  # a collection in the block would free (and count) older objects
        _nrt_python.memsys_enable_stats()
        own_call = Dispatcher.__dict__.get("__call__")  # None: inherited from C
        Dispatcher.__call__ = counting_call  # every Python -> jitted call, any module
        try:
            numpy_bytes, numpy_blocks = _numpy_live()
            nrt_allocs, nrt_frees = self._nrt_net()
            tracemalloc.reset_peak()
            level = tracemalloc.get_traced_memory()[0]
            yield seen
            seen.peak = tracemalloc.get_traced_memory()[1] - level
            allocs, frees = self._nrt_net()
            seen.nrt_allocs, seen.nrt_frees = allocs - nrt_allocs, frees - nrt_frees
            now_bytes, now_blocks = _numpy_live()
            seen.numpy_bytes = now_bytes - numpy_bytes
            seen.numpy_blocks = now_blocks - numpy_blocks
        finally:
            if own_call is None:
                del Dispatcher.__call__
            else:
                Dispatcher.__call__ = own_call
            if not stats_were_on:
                _nrt_python.memsys_disable_stats()
            if gc_was_on:
                gc.enable()


@pytest.fixture
def allocations():
    """An ``AllocationMeter``: ``with allocations.measure() as seen: ...`` then
    ``seen.numpy_bytes``, ``seen.numpy_blocks``, ``seen.peak``, ``seen.nrt_allocs``,
    ``seen.nrt_frees``; ``allocations.per_step(lr)`` measures each step of a fit.
    tracemalloc traces from the test's start to its end."""
    meter = AllocationMeter()
    with meter.tracing():
        yield meter
