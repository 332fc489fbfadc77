"""Memory and seed layout shared by the model, layers, optimizers and augmentation:
flat buffers at staggered offsets, work buffers kept per row count, derived seeds."""
import numpy as np

#: Work buffer sets kept per owner (a layer, an Augment); fit uses two (full and last
#: partial batch).
MAX_CACHED_BATCH_SIZES = 4


def staggered_buffers(sizes, dtype):
    """Zeroed 1-D arrays of the given sizes, cut from one block at staggered offsets.

    Equal-size arrays allocated apart start at the same offset in a page, and a kernel
    streaming through several of them at once then runs 15-25% slower (cache-set
    conflicts, measured on the Adam update). Offsets here differ by 256 bytes.
    """
    itemsize = np.dtype(dtype).itemsize
    gap = 256 // itemsize
    starts, total = [], 0
    for k, size in enumerate(sizes):
        starts.append(total + k * gap)
        total += size
    block = np.zeros(total + len(sizes) * gap, dtype)
    return [block[s:s + n] for s, n in zip(starts, sizes)]


def cached_work(cache, n_rows, dtype, make, shape=None):
    """``make(n_rows, dtype)``'s buffers (an array or a tuple of arrays, the first in
    ``dtype`` and, when given, of ``shape``), made once per row count and kept in
    ``cache``, a dict that holds at most ``MAX_CACHED_BATCH_SIZES`` row counts (the
    oldest goes)."""
    work = cache.get(n_rows)
    first = work[0] if isinstance(work, tuple) else work
    if work is None or first.dtype != dtype or (shape is not None and first.shape != shape):
        if work is None and len(cache) >= MAX_CACHED_BATCH_SIZES:
            cache.pop(next(iter(cache)))
        work = cache[n_rows] = make(n_rows, dtype)
    return work


def derived_seed(seed, tag):
    """A 63-bit seed for one random stream (a Dropout layer, an augmentation kernel)
    from ``(seed, tag)``: ``SeedSequence([seed, tag])``'s first word, shifted so the
    kernels take it as an int64."""
    state = np.random.SeedSequence([seed, tag]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))
