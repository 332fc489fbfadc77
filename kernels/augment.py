"""Data augmentation of input rows, with draws from the counter-based hash.

Both kernels are pure functions of (X, parameters, seed, step): every draw is
``uniform_from_counter(seed, step, index)`` for an index fixed by the element or row, so
the output is the same bytes for any thread count and for the serial and parallel
variants.

Gaussian noise (element (i, j) of an (n, d) array has flat index k = i * d + j; the
elements 2p and 2p + 1 share the pair p = k // 2 of Box-Muller, one taking the cosine and
the other the sine, so one log, cos and sin make two normals):

    u1 = uniform_from_counter(seed, step, 2 * p)
    u2 = uniform_from_counter(seed, step, 2 * p + 1)
    r  = sqrt(-2 * log(1 - u1)),   t = 2 * pi * u2
    z  = r * cos(t) if k is even else r * sin(t)
    out[i, j] = X[i, j] + sigma * z                       (in float64, rounded once)

1 - u1 is in [2**-53, 1], so the log is finite and |z| <= sqrt(106 log 2) ~ 8.57: the
tails beyond 8.57 standard deviations (probability ~1e-17) are cut off. Pairs may
straddle two rows (odd d); a row computes such a pair itself, so rows stay independent.

Shifts and flips (row i, ``image_draws``):

    dy   = min(floor(uniform_from_counter(seed, step, 3 * i) * (2s + 1)), 2s) - s
    dx   = min(floor(uniform_from_counter(seed, step, 3 * i + 1) * (2s + 1)), 2s) - s
    flip = flip_enabled and uniform_from_counter(seed, step, 3 * i + 2) < 0.5

with s = max_shift; each row is ``channels`` planes of height x width pixels (the row is
``X[i].reshape(channels, height, width)``, C order) and every plane of a row gets the
same draws. The row is first flipped left-right, then shifted:

    out[c, y, x] = src[c, y - dy, x - dx]   (0 where y - dy or x - dx is off the image)
    src[c, y, x] = X[c, y, width - 1 - x] if flip else X[c, y, x]

so a positive dy moves the content down and a positive dx moves it right.
"""
import math

import numpy as np
from numba import njit, prange

from ._parallel import PARALLEL_MIN_SIZE, serial_and_parallel
from ._random import uniform_from_counter

_TWO_PI = 2.0 * math.pi


# --- Gaussian noise --------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _polar(seed, step, p):
    """(r, t) of Box-Muller pair p: the normals are r * cos(t) and r * sin(t)."""
    r = math.sqrt(-2.0 * math.log(1.0 - uniform_from_counter(seed, step, 2 * p)))
    return r, _TWO_PI * uniform_from_counter(seed, step, 2 * p + 1)


@njit(cache=True, inline="always")
def _noise_row(X, i, sigma, seed, step, out):
    d = X.shape[1]
    k0 = i * d
    j = 0
    if k0 & 1:  # the row starts with the sine half of a pair begun on the row above
        r, t = _polar(seed, step, k0 >> 1)
        out[i, 0] = np.float64(X[i, 0]) + sigma * (r * math.sin(t))
        j = 1
    while j + 1 < d:  # k0 + j is even here
        r, t = _polar(seed, step, (k0 + j) >> 1)
        out[i, j] = np.float64(X[i, j]) + sigma * (r * math.cos(t))
        out[i, j + 1] = np.float64(X[i, j + 1]) + sigma * (r * math.sin(t))
        j += 2
    if j < d:  # the row ends with the cosine half of a pair finished on the row below
        r, t = _polar(seed, step, (k0 + j) >> 1)
        out[i, j] = np.float64(X[i, j]) + sigma * (r * math.cos(t))


def _gaussian_noise(X, sigma, seed, step, out):
    for i in prange(X.shape[0]):
        _noise_row(X, i, sigma, seed, step, out)


_gaussian_noise_serial, _gaussian_noise_parallel = serial_and_parallel(_gaussian_noise)


@njit(cache=True)
def add_gaussian_noise(X, sigma, seed, step, out, parallel=True):
    """``out = X + sigma * z`` with z standard normal from the counter hash.

    X (n, d) read; sigma float >= 0; seed, step int >= 0 (element k = i * d + j takes
    the cosine (k even) or sine (k odd) of the Box-Muller pair made from the uniforms at
    indices ``2 * (k // 2)`` and ``2 * (k // 2) + 1``: see the module docstring); out
    (n, d) written (may be X itself). X and out share a dtype; the sum is formed in
    float64 and rounded once to out's dtype.
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.

    Notes: parallel over rows from ``PARALLEL_MIN_SIZE`` elements; each element depends
    only on (X[i, j], sigma, seed, step, k), so the same bits for any thread count.
    About 16 ns an element on one core (a log, a cos and a sin per two elements).
    """
    if parallel is not None:
        if parallel and X.size >= PARALLEL_MIN_SIZE:
            _gaussian_noise_parallel(X, sigma, seed, step, out)
            return
    _gaussian_noise_serial(X, sigma, seed, step, out)


# --- shifts and horizontal flips of images --------------------------------------------------

@njit(cache=True, inline="always")
def _shift_draw(u, max_shift):
    span = 2 * max_shift + 1
    k = int(u * span)  # u in [0, 1): floor; the min guards a product rounded up to span
    return min(k, span - 1) - max_shift


@njit(cache=True, inline="always")
def _row_draws(seed, step, i, max_shift, flip):
    dy = _shift_draw(uniform_from_counter(seed, step, 3 * i), max_shift)
    dx = _shift_draw(uniform_from_counter(seed, step, 3 * i + 1), max_shift)
    flipped = flip and uniform_from_counter(seed, step, 3 * i + 2) < 0.5
    return dy, dx, flipped


@njit(cache=True)
def image_draws(n_rows, max_shift, flip, seed, step, draws):
    """The per-row draws of ``shift_flip_images``: ``draws[i] = (dy, dx, flip)``.

    n_rows int; max_shift int >= 0; flip bool (False: every flip draw is 0); seed, step
    int >= 0; draws (n_rows, 3) int64 written, dy and dx in [-max_shift, max_shift] and
    flip 0 or 1 (formulas in the module docstring).

    Notes: serial (three hashes a row); for tests and inspection, the image kernel draws
    the same values itself.
    """
    for i in range(n_rows):
        dy, dx, flipped = _row_draws(seed, step, i, max_shift, flip)
        draws[i, 0] = dy
        draws[i, 1] = dx
        draws[i, 2] = 1 if flipped else 0


@njit(cache=True, inline="always")
def _shift_flip_row(X, i, channels, height, width, max_shift, flip, seed, step, out):
    dy, dx, flipped = _row_draws(seed, step, i, max_shift, flip)
    zero = out.dtype.type(0.0)
    plane = height * width
    for c in range(channels):
        base = c * plane
        for y in range(height):
            row = base + y * width
            sy = y - dy
            if sy < 0 or sy >= height:
                for x in range(width):
                    out[i, row + x] = zero
                continue
            src = base + sy * width
            for x in range(width):
                sx = x - dx
                if sx < 0 or sx >= width:
                    out[i, row + x] = zero
                elif flipped:
                    out[i, row + x] = X[i, src + width - 1 - sx]
                else:
                    out[i, row + x] = X[i, src + sx]


def _shift_flip(X, channels, height, width, max_shift, flip, seed, step, out):
    for i in prange(X.shape[0]):
        _shift_flip_row(X, i, channels, height, width, max_shift, flip, seed, step, out)


_shift_flip_serial, _shift_flip_parallel = serial_and_parallel(_shift_flip)


@njit(cache=True)
def shift_flip_images(X, channels, height, width, max_shift, flip, seed, step, out,
                      parallel=True):
    """Shift each image row by (dy, dx) pixels and flip it left-right with probability 1/2.

    X (n, channels * height * width) read, each row ``channels`` planes of height x
    width pixels in C order; channels, height, width int >= 1; max_shift int >= 0 (dy
    and dx uniform in [-max_shift, max_shift]); flip bool; seed, step int >= 0 (row i
    draws at indices 3i, 3i + 1, 3i + 2, see ``image_draws``); out (n, same) written,
    with 0 for pixels shifted in from outside the image. out must NOT alias X (a row
    is read while it is written). X and out share a dtype; values are copied, not
    rounded.
    parallel: True (default) takes the parallel build from PARALLEL_MIN_SIZE elements;
    None never does and leaves it uncompiled.

    Notes: parallel over rows from ``PARALLEL_MIN_SIZE`` elements; a row depends only on
    its own pixels and draws, so the same bits for any thread count.
    """
    if parallel is not None:
        if parallel and X.size >= PARALLEL_MIN_SIZE:
            _shift_flip_parallel(X, channels, height, width, max_shift, flip, seed, step,
                                 out)
            return
    _shift_flip_serial(X, channels, height, width, max_shift, flip, seed, step, out)
