"""add_gaussian_noise, image_draws and shift_flip_images against the pure-Python
references of the same counter scheme, and the statistics of their draws."""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import kernels
import reference as ref

# (n, d) with d odd, so Box-Muller pairs straddle rows; the second is above
# PARALLEL_MIN_SIZE (the parallel variant).
NOISE_SHAPES = [pytest.param((70, 21), id="serial"), pytest.param((1100, 61), id="parallel")]


def _noise(X, sigma, seed, step, out=None):
    out = np.full_like(X, np.nan) if out is None else out
    kernels.add_gaussian_noise(X, sigma, seed, step, out)
    return out


# --- Gaussian noise ------------------------------------------------------------------------

@pytest.mark.parametrize("shape", NOISE_SHAPES)
def test_add_gaussian_noise_matches_reference(dtype, rng, tol, shape):
    X = rng.standard_normal(shape).astype(dtype)
    out = _noise(X, 0.3, 42, 7)
    assert out.dtype == dtype
    n = shape[0]
    # the pure-Python reference is slow: the first and the last rows against it
    for rows in (slice(0, 25), slice(n - 25, n)):
        expected = ref.add_gaussian_noise(X[rows], 0.3, 42, 7, row_offset=rows.start)
        assert_allclose(out[rows], expected, **tol(dtype))


def test_add_gaussian_noise_draws_are_the_reference_normals():
    """float64: out - X is sigma times the reference's Box-Muller normals, to rounding."""
    X = np.zeros((9, 7))
    out = _noise(X, 1.0, 123, 2**40 + 5)
    assert_allclose(out, ref.gaussian_noise(X.shape, 123, 2**40 + 5), rtol=1e-14, atol=1e-15)
    # element k takes the cosine (k even) or the sine (k odd) of pair k // 2
    k = 7 * 3 + 4
    assert out.ravel()[k] == pytest.approx(ref.normal_from_counter(123, 2**40 + 5, k), abs=1e-15)


def test_add_gaussian_noise_in_place(dtype, rng):
    """out may be X: the same bytes as a separate output."""
    X = rng.standard_normal((40, 33)).astype(dtype)
    expected = _noise(X, 0.5, 3, 1)
    kernels.add_gaussian_noise(X, 0.5, 3, 1, X)
    assert X.tobytes() == expected.tobytes()


def test_add_gaussian_noise_sigma_zero_is_identity(dtype, rng):
    X = rng.standard_normal((50, 13)).astype(dtype)
    assert_array_equal(_noise(X, 0.0, 1, 1), X)


def test_gaussian_noise_statistics():
    """On 10^6 elements: mean within 4 standard errors of 0, standard deviation within 4
    standard errors of sigma, the cosine and sine halves each too, the two halves of a pair
    uncorrelated, and the fraction within one sigma that of a normal."""
    sigma, n = 0.5, 10**6
    z = _noise(np.zeros((1000, 1000)), sigma, 2024, 0)
    se_mean, se_std = sigma / np.sqrt(n), sigma / np.sqrt(2 * n)
    assert abs(z.mean()) < 4 * se_mean
    assert abs(z.std() - sigma) < 4 * se_std
    cos_half, sin_half = z[:, 0::2], z[:, 1::2]  # d even: even columns are even k
    for half in (cos_half, sin_half):
        assert abs(half.mean()) < 4 * se_mean * np.sqrt(2)
        assert abs(half.std() - sigma) < 4 * se_std * np.sqrt(2)
    corr = np.corrcoef(cos_half.ravel(), sin_half.ravel())[0, 1]
    assert abs(corr) < 4 / np.sqrt(n / 2)
    within = (np.abs(z) < sigma).mean()
    p = 0.6826894921370859  # P(|N(0, 1)| < 1)
    assert abs(within - p) < 4 * np.sqrt(p * (1 - p) / n)
    assert np.abs(z).max() <= sigma * np.sqrt(-2 * np.log(2.0**-53))  # the documented bound


def test_gaussian_noise_depends_on_seed_and_step_only():
    X = np.zeros((300, 300))
    assert _noise(X, 1.0, 1, 2).tobytes() == _noise(X, 1.0, 1, 2).tobytes()
    assert (_noise(X, 1.0, 1, 2) != _noise(X, 1.0, 1, 3)).mean() > 0.99
    assert (_noise(X, 1.0, 1, 2) != _noise(X, 1.0, 2, 2)).mean() > 0.99


def test_gaussian_noise_is_the_same_in_both_dtypes(rng):
    """float32 output is the float64 one rounded once (the normals are drawn in float64)."""
    X = rng.standard_normal((60, 45)).astype(np.float32)
    out32 = _noise(X, 0.2, 9, 9)
    out64 = _noise(X.astype(np.float64), 0.2, 9, 9)
    assert_array_equal(out32, out64.astype(np.float32))


# --- shifts and flips ----------------------------------------------------------------------

@pytest.mark.parametrize("max_shift", [0, 1, 3])
@pytest.mark.parametrize("flip", [False, True])
def test_image_draws_matches_reference(max_shift, flip):
    draws = np.full((400, 3), -99, np.int64)
    kernels.image_draws(400, max_shift, flip, 17, 2**33 + 1, draws)
    assert_array_equal(draws, ref.image_draws(400, max_shift, flip, 17, 2**33 + 1))
    assert np.abs(draws[:, :2]).max() <= max_shift
    assert set(np.unique(draws[:, 2])) <= ({0, 1} if flip else {0})


# (n, channels, height, width): the last is 70400 >= PARALLEL_MIN_SIZE values
IMAGE_CASES = [
    pytest.param((60, 1, 7, 9), id="serial-7x9"),
    pytest.param((40, 3, 5, 4), id="serial-3x5x4"),
    pytest.param((1100, 1, 8, 8), id="parallel-8x8"),
]


@pytest.mark.parametrize("case", IMAGE_CASES)
@pytest.mark.parametrize("max_shift, flip", [(0, True), (1, False), (2, True), (6, True)])
def test_shift_flip_images_matches_reference(dtype, rng, case, max_shift, flip):
    """Values are copied, not computed: exactly the reference's (max_shift 6 reaches past
    every side of the 5x4 and 7x9 images: whole rows and columns of zeros)."""
    n, channels, height, width = case
    X = rng.standard_normal((n, channels * height * width)).astype(dtype)
    out = np.full_like(X, np.nan)
    kernels.shift_flip_images(X, channels, height, width, max_shift, flip, 5, 11, out)
    assert out.dtype == dtype
    expected = ref.shift_flip_images(X, channels, height, width, max_shift, flip, 5, 11)
    assert_array_equal(out, expected)


def test_shift_flip_images_identity(dtype, rng):
    """max_shift 0 and no flip: out is X."""
    X = rng.standard_normal((30, 3 * 6 * 5)).astype(dtype)
    out = np.full_like(X, np.nan)
    kernels.shift_flip_images(X, 3, 6, 5, 0, False, 1, 2, out)
    assert_array_equal(out, X)


def test_flip_twice_with_the_same_draws_is_identity(rng):
    """max_shift 0: a row is X's or its mirror image (per draw), and flipping again with
    the same (seed, step) undoes it."""
    X = rng.standard_normal((200, 2 * 4 * 6))
    once, twice = np.empty_like(X), np.empty_like(X)
    kernels.shift_flip_images(X, 2, 4, 6, 0, True, 8, 3, once)
    kernels.shift_flip_images(once, 2, 4, 6, 0, True, 8, 3, twice)
    assert_array_equal(twice, X)
    draws = np.empty((200, 3), np.int64)
    kernels.image_draws(200, 0, True, 8, 3, draws)
    mirrored = X.reshape(200, 2, 4, 6)[:, :, :, ::-1].reshape(200, -1)
    assert_array_equal(once, np.where(draws[:, 2:] == 1, mirrored, X))
    assert 0.3 < draws[:, 2].mean() < 0.7


def test_shift_moves_a_pixel_by_the_draws():
    """A single lit pixel at the centre of 9x9 images lands at (4 + dy, 4 + dx): positive
    dy moves the content down, positive dx right (the centre column is flip-invariant)."""
    n, max_shift = 500, 3
    X = np.zeros((n, 81))
    X[:, 4 * 9 + 4] = 1.0
    out = np.empty_like(X)
    kernels.shift_flip_images(X, 1, 9, 9, max_shift, True, 21, 4, out)
    draws = np.empty((n, 3), np.int64)
    kernels.image_draws(n, max_shift, True, 21, 4, draws)
    assert_array_equal(out.sum(axis=1), 1.0)
    y, x = np.divmod(out.argmax(axis=1), 9)
    assert_array_equal(y, 4 + draws[:, 0])
    assert_array_equal(x, 4 + draws[:, 1])


def test_flip_mirrors_before_the_shift():
    """A lit pixel at column 0 of a 1x5 image: flip sends it to column 4, then dx moves it."""
    X = np.zeros((300, 5))
    X[:, 0] = 1.0
    out = np.empty_like(X)
    kernels.shift_flip_images(X, 1, 1, 5, 1, True, 2, 2, out)
    draws = np.empty((300, 3), np.int64)
    kernels.image_draws(300, 1, True, 2, 2, draws)
    col = np.where(draws[:, 2] == 1, 4, 0) + draws[:, 1]
    inside = (col >= 0) & (col < 5) & (draws[:, 0] == 0)
    assert_array_equal(out[inside].argmax(axis=1), col[inside])
    assert_array_equal(out[~inside], 0.0)  # shifted off the image (or off its one row)


def test_image_draws_distribution():
    """On 10^5 rows each of the 2s + 1 shifts has frequency 1/(2s + 1) within 4 standard
    errors, dy and dx are independent (a chi-square test on the joint table) and half the
    rows are flipped."""
    n, s = 10**5, 3
    draws = np.empty((n, 3), np.int64)
    kernels.image_draws(n, s, True, 77, 1, draws)
    p = 1 / (2 * s + 1)
    for col in (0, 1):
        freq = np.bincount(draws[:, col] + s, minlength=2 * s + 1) / n
        assert np.all(np.abs(freq - p) < 4 * np.sqrt(p * (1 - p) / n))
    joint = np.zeros((2 * s + 1, 2 * s + 1))
    np.add.at(joint, (draws[:, 0] + s, draws[:, 1] + s), 1)
    chi2 = ((joint - n * p * p) ** 2 / (n * p * p)).sum()
    dof = (2 * s + 1) ** 2 - 1
    assert chi2 < dof + 4 * np.sqrt(2 * dof)  # mean dof, standard deviation sqrt(2 dof)
    assert abs(draws[:, 2].mean() - 0.5) < 4 * np.sqrt(0.25 / n)


def test_shift_flip_depends_on_seed_and_step_only(rng):
    X = rng.standard_normal((500, 64))

    def run(seed, step):
        out = np.empty_like(X)
        kernels.shift_flip_images(X, 1, 8, 8, 2, True, seed, step, out)
        return out
    assert run(1, 2).tobytes() == run(1, 2).tobytes()
    differs = lambda a, b: (a != b).any(axis=1).mean()  # noqa: E731
    assert differs(run(1, 2), run(1, 3)) > 0.8
    assert differs(run(1, 2), run(2, 2)) > 0.8
