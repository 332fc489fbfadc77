"""nn.Augment on its own: validation, config, check, and apply (shapes, buffers,
reproducibility from (seed, epoch, step), the documented seeds and counter)."""
import json
import pickle

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import kernels
import nn


def _stream_seed(seed, tag):
    return int(np.random.SeedSequence([seed, tag]).generate_state(1, np.uint64)[0] >> 1)


NOISE_TAG, IMAGE_TAG = 0x61756701, 0x61756702  # documented in Augment's docstring


# --- construction --------------------------------------------------------------------------

BAD_ARGS = [
    (dict(), ValueError, r"Augment: no augmentation enabled; set noise > 0"),
    (dict(noise=0.0, image_shape=(4, 4)), ValueError, r"no augmentation enabled"),
    (dict(noise=-0.1), ValueError, r"Augment: noise must be >= 0.0; got -0.1"),
    (dict(noise=float("nan")), ValueError, r"Augment: noise must be finite; got nan"),
    (dict(noise="0.1"), TypeError, r"Augment: noise must be a real number; got '0.1'"),
    (dict(noise=True), TypeError, r"Augment: noise must be a real number; got True"),
    (dict(image_shape=28, flip=True), TypeError,
     r"Augment: image_shape must be a pair of ints \(height, width\) or a triple "
     r"\(channels, height, width\); got 28"),
    (dict(image_shape=(28,), flip=True), TypeError, r"image_shape must be a pair .*; got \(28,\)"),
    (dict(image_shape=(28.0, 28), flip=True), TypeError, r"image_shape must be a pair"),
    (dict(image_shape=(True, 28), flip=True), TypeError, r"image_shape must be a pair"),
    (dict(image_shape=(0, 28), flip=True), ValueError,
     r"Augment: image_shape must hold positive sizes; got \(0, 28\)"),
    (dict(image_shape=(4, 4), max_shift=-1), ValueError,
     r"Augment: max_shift must be >= 0; got -1"),
    (dict(image_shape=(4, 4), max_shift=1.0), TypeError,
     r"Augment: max_shift must be an integer; got 1.0"),
    (dict(image_shape=(4, 6), max_shift=4), ValueError,
     r"Augment: max_shift must be smaller than the image's height and width 4x6; got 4"),
    (dict(image_shape=(3, 5, 2), max_shift=2), ValueError,
     r"smaller than the image's height and width 5x2; got 2"),
    (dict(image_shape=(4, 4), flip=1), TypeError, r"Augment: flip must be True or False; got 1"),
    (dict(flip=True), ValueError,
     r"Augment: max_shift and flip need image_shape, .*; got max_shift=0, flip=True and "
     r"image_shape=None"),
    (dict(noise=0.1, max_shift=2), ValueError, r"max_shift and flip need image_shape"),
]


@pytest.mark.parametrize("kwargs, error, regex", BAD_ARGS)
def test_bad_arguments_raise_clear_errors(kwargs, error, regex):
    with pytest.raises(error, match=regex) as info:
        nn.Augment(**kwargs)
    assert type(info.value) is error


@pytest.mark.parametrize("kwargs", [
    dict(noise=0.1),
    dict(image_shape=(28, 28), max_shift=2),
    dict(image_shape=[3, 8, 6], flip=True),
    dict(noise=1, image_shape=(np.int64(5), 7), max_shift=4, flip=np.bool_(True)),
    dict(noise=0.1, image_shape=(4, 4)),  # the shape only checks the width here
])
def test_config_is_json_and_rebuilds(kwargs):
    aug = nn.Augment(**kwargs)
    config = json.loads(json.dumps(aug.config()))
    assert config == aug.config()
    assert nn.Augment(**config).config() == config
    assert nn.Augment.from_config(config).config() == config
    assert set(config) == {"noise", "image_shape", "max_shift", "flip"}
    assert type(config["noise"]) is float and type(config["flip"]) is bool
    assert repr(aug).startswith("Augment(noise=")


def test_exported():
    assert "Augment" in nn.__all__ and nn.Augment.__module__ == "nn.augment"


def test_check_n_features():
    nn.Augment(image_shape=(4, 5), flip=True).check(20, "fit")
    nn.Augment(image_shape=(3, 4, 5), flip=True).check(60, "fit")
    nn.Augment(noise=0.5).check(7, "fit")  # noise fits any width
    with pytest.raises(ValueError, match=r"^fit: augment image_shape \(4, 5\) needs rows of "
                                         r"20 features; the model takes 21 features\.$"):
        nn.Augment(image_shape=(4, 5), flip=True).check(21, "fit")
    with pytest.raises(ValueError, match=r"image_shape \(3, 4, 5\) needs rows of 60"):
        nn.Augment(noise=0.1, image_shape=(3, 4, 5)).check(20, "fit")


# --- apply ---------------------------------------------------------------------------------

AUGMENTS = [
    pytest.param(dict(noise=0.2), id="noise"),
    pytest.param(dict(image_shape=(6, 5), max_shift=2), id="shift"),
    pytest.param(dict(image_shape=(6, 5), flip=True), id="flip"),
    pytest.param(dict(noise=0.2, image_shape=(6, 5), max_shift=1, flip=True), id="all"),
]


@pytest.mark.parametrize("kwargs", AUGMENTS)
def test_apply_returns_a_new_batch_and_leaves_the_input(dtype, rng, kwargs):
    aug = nn.Augment(**kwargs)
    X = rng.standard_normal((40, 30)).astype(dtype)
    before = X.copy()
    out = aug.apply(X, 0, 1, 2)
    assert out.shape == X.shape and out.dtype == X.dtype
    assert out is not X and not np.shares_memory(out, X)
    assert X.tobytes() == before.tobytes()
    assert (out != X).any(axis=1).mean() > 0.5  # most rows changed
    assert np.isfinite(out).all()


@pytest.mark.parametrize("kwargs", AUGMENTS)
def test_apply_is_a_function_of_seed_epoch_step(rng, kwargs):
    """The same (seed, epoch, step) gives the same bytes whatever ran before, on a fresh
    Augment as on a used one; a different seed, epoch or step gives other values."""
    X = rng.standard_normal((40, 30))
    used = nn.Augment(**kwargs)
    for epoch in range(3):
        for step in range(4):
            used.apply(X, 7, epoch, step)
    expected = nn.Augment(**kwargs).apply(X, 7, 3, 2).copy()
    assert used.apply(X, 7, 3, 2).tobytes() == expected.tobytes()
    for other in [(8, 3, 2), (7, 2, 2), (7, 3, 1), (7, 2, 2**32 - 1)]:
        assert used.apply(X, *other).tobytes() != expected.tobytes()


def test_epoch_and_step_do_not_alias():
    """(epoch, step) -> epoch * 2**32 + step: (1, 0) is not (0, 1) nor (0, 2**32 - 1)."""
    aug, X = nn.Augment(noise=1.0), np.zeros((10, 10))
    outs = {aug.apply(X, 0, e, s).tobytes() for e, s in [(0, 1), (1, 0), (1, 1), (0, 2**32 - 1)]}
    assert len(outs) == 4


def test_apply_uses_the_documented_seeds_and_counter(dtype, rng):
    """Noise after shift/flip, each kernel with SeedSequence([seed, tag]) >> 1 and the
    counter epoch * 2**32 + step."""
    aug = nn.Augment(noise=0.3, image_shape=(2, 4, 5), max_shift=1, flip=True)
    X = rng.standard_normal((25, 40)).astype(dtype)
    counter = 5 * 2**32 + 9
    expected = np.empty_like(X)
    kernels.shift_flip_images(X, 2, 4, 5, 1, True, _stream_seed(11, IMAGE_TAG), counter,
                              expected)
    kernels.add_gaussian_noise(expected, 0.3, _stream_seed(11, NOISE_TAG), counter, expected)
    assert aug.apply(X, 11, 5, 9).tobytes() == expected.tobytes()

    noise_only = np.empty_like(X)
    kernels.add_gaussian_noise(X, 0.3, _stream_seed(11, NOISE_TAG), counter, noise_only)
    assert nn.Augment(noise=0.3).apply(X, 11, 5, 9).tobytes() == noise_only.tobytes()


def test_noise_and_image_streams_are_distinct():
    assert _stream_seed(0, NOISE_TAG) != _stream_seed(0, IMAGE_TAG)
    assert all(0 <= _stream_seed(s, t) < 2**63 for s in (0, 2**64 - 1) for t in (1, 2))


def test_apply_noise_statistics(rng):
    X = rng.standard_normal((500, 200))
    z = nn.Augment(noise=0.25).apply(X, 3, 0, 0) - X
    assert abs(z.mean()) < 4 * 0.25 / np.sqrt(z.size)
    assert abs(z.std() - 0.25) < 4 * 0.25 / np.sqrt(2 * z.size)


def test_flip_only_rows_are_the_row_or_its_mirror(rng):
    X = rng.standard_normal((100, 12))
    out = nn.Augment(image_shape=(3, 4), flip=True).apply(X, 0, 0, 0)
    mirror = X.reshape(100, 3, 4)[:, :, ::-1].reshape(100, 12)
    same, flipped = (out == X).all(axis=1), (out == mirror).all(axis=1)
    assert (same | flipped).all()
    assert 20 < flipped.sum() < 80


def test_apply_reuses_one_buffer_per_batch_size(rng):
    """No allocation after a batch size's first call: the same buffer comes back."""
    aug = nn.Augment(noise=0.1)
    full, last = rng.standard_normal((32, 8)), rng.standard_normal((7, 8))
    a = aug.apply(full, 0, 0, 0)
    b = aug.apply(last, 0, 0, 1)
    assert aug.apply(full, 0, 0, 2) is a and aug.apply(last, 0, 1, 0) is b and a is not b
    assert aug.apply(full.astype(np.float32), 0, 0, 3).dtype == np.float32  # new dtype: new

    work = {}
    c = aug.apply(full, 0, 0, 0, work)
    assert c is not a and aug.apply(full, 0, 0, 1, work) is c and list(work) == [32]


def test_copies_do_not_share_buffers(rng):
    aug = nn.Augment(noise=0.1)
    X = rng.standard_normal((5, 3))
    out = aug.apply(X, 0, 0, 0)
    clone = pickle.loads(pickle.dumps(aug))
    assert clone.config() == aug.config()
    assert clone.apply(X, 0, 0, 0) is not out
    assert clone.apply(X, 0, 0, 0).tobytes() == out.tobytes()


BAD_APPLY = [
    (dict(X_batch=[[1.0, 2.0]]), TypeError,
     r"Augment.apply: X_batch must be a 2-D C-contiguous float32 or float64 array; got list"),
    (dict(X_batch=np.zeros(4)), TypeError, r"got array of shape \(4,\), dtype float64"),
    (dict(X_batch=np.zeros((3, 4), np.int64)), TypeError, r"dtype int64"),
    (dict(X_batch=np.zeros((4, 3)).T), TypeError, r"not C-contiguous"),
    (dict(X_batch=np.zeros((3, 5))), ValueError,
     r"Augment.apply: augment image_shape \(2, 2\) needs rows of 4 features; "
     r"X_batch has 5"),
    (dict(seed=-1), ValueError, r"Augment.apply: seed must be >= 0; got -1"),
    (dict(epoch=2**31), ValueError, r"Augment.apply: epoch must be < 2147483648"),
    (dict(step=2**32), ValueError, r"Augment.apply: step must be < 4294967296"),
    (dict(step=1.0), TypeError, r"Augment.apply: step must be an integer; got 1.0"),
    (dict(work=[]), TypeError, r"Augment.apply: work must be a dict \(or None\); got \[\]"),
]


@pytest.mark.parametrize("kwargs, error, regex", BAD_APPLY)
def test_apply_bad_arguments(kwargs, error, regex):
    args = dict(X_batch=np.zeros((3, 4)), seed=0, epoch=0, step=0, work=None) | kwargs
    with pytest.raises(error, match=regex) as info:
        nn.Augment(image_shape=(2, 2), flip=True).apply(**args)
    assert type(info.value) is error
