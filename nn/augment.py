"""Data augmentation of training mini-batches: Gaussian noise, image shifts and flips.

``Augment`` holds the settings; ``fit`` calls ``apply`` on every training mini-batch
(never on validation or prediction data). Each call is a pure function of the batch and
(seed, epoch, step), so an epoch's augmentation is the same bytes whatever ran before
it, and for any Numba thread count.
"""
import numbers

import numpy as np

import kernels

from ._layout import cached_work, derived_seed
from ._validation import FLOAT_DTYPES, check_bool, check_scalar

#: Tags mixed with the seed, one stream per kernel (and none shared with Dropout's
#: ``SeedSequence([model seed, layer index])`` for any model of fewer than 1.6e9 layers).
_NOISE_TAG = 0x61756701
_IMAGE_TAG = 0x61756702

_MAX_EPOCH = 1 << 31
_MAX_STEP = 1 << 32


class Augment:
    """Random changes to each training mini-batch, reproducible from the seed.

    Parameters
    ----------
    noise : float >= 0, default 0.0
        Standard deviation of the Gaussian noise added to every feature (in the units of
        the features as given to ``fit``); 0 adds none.
    image_shape : (height, width) or (channels, height, width) of ints >= 1, or None
        How a row of X is laid out as an image, in C order (``row.reshape(image_shape)``;
        with channels, the planes come first). Needed by ``max_shift`` and ``flip``.
    max_shift : int >= 0, default 0
        Each image is shifted by dy and dx pixels drawn uniformly from
        ``[-max_shift, max_shift]``; pixels shifted in from outside are 0. Must be smaller
        than the height and the width.
    flip : bool, default False
        Flip each image left-right with probability 1/2 (before the shift).

    At least one augmentation must be enabled: ``noise > 0``, ``max_shift > 0`` or
    ``flip``. With both, the image is shifted and flipped first, then the noise added.

    Randomness: the batch at (seed, epoch, step) uses the kernel counter
    ``epoch * 2**32 + step`` and, per kernel, the seed
    ``nn._layout.derived_seed(seed, tag)`` (tags
    ``0x61756701`` for the noise, ``0x61756702`` for the images); see
    ``kernels.add_gaussian_noise`` and ``kernels.shift_flip_images`` for the draws.

    Raises
    ------
    TypeError
        When an argument has the wrong type (e.g. a float max_shift, a non-bool flip).
    ValueError
        When a value is out of range, when max_shift or flip is given without
        image_shape, or when no augmentation is enabled.

    Examples
    --------
    >>> aug = Augment(noise=0.1, image_shape=(8, 8), max_shift=1, flip=True)
    >>> aug.config()
    {'noise': 0.1, 'image_shape': [8, 8], 'max_shift': 1, 'flip': True}
    """

    def __init__(self, noise=0.0, image_shape=None, max_shift=0, flip=False):
        where = "Augment"
        self.noise = check_scalar("noise", noise, where=where, low=0.0)
        self.image_shape = _check_image_shape(image_shape, where)
        self.max_shift = check_scalar("max_shift", max_shift, where=where, low=0, integer=True)
        self.flip = check_bool("flip", flip, where=where)
        if self.image_shape is None:
            if self.max_shift or self.flip:
                raise ValueError(f"{where}: max_shift and flip need image_shape, the "
                                 f"(height, width) of the images in the rows; got "
                                 f"max_shift={self.max_shift}, flip={self.flip} and "
                                 f"image_shape=None.")
        else:
            height, width = self.image_shape[-2:]
            if self.max_shift >= min(height, width):
                raise ValueError(f"{where}: max_shift must be smaller than the image's "
                                 f"height and width {height}x{width}; got {self.max_shift}.")
        if self.noise == 0.0 and not self._images_on:
            raise ValueError(f"{where}: no augmentation enabled; set noise > 0, or "
                             f"image_shape with max_shift > 0 or flip=True; got "
                             f"noise={self.noise}, max_shift={self.max_shift}, "
                             f"flip={self.flip}.")
        self._work = {}
        self._seeds = None

    @property
    def _images_on(self):
        return self.max_shift > 0 or self.flip

    def config(self):
        """The constructor arguments, JSON-serialisable: ``Augment(**aug.config())``."""
        return {"noise": self.noise,
                "image_shape": None if self.image_shape is None else list(self.image_shape),
                "max_shift": self.max_shift, "flip": self.flip}

    @classmethod
    def from_config(cls, config):
        """The Augment that ``config()`` describes."""
        return cls(**config)

    def check(self, n_features, where="Augment", rows="the model takes"):
        """Raise ValueError unless the image shape fits rows of ``n_features`` values;
        ``rows`` says whose rows they are in the message."""
        if self.image_shape is not None:
            size = int(np.prod(self.image_shape))
            if size != n_features:
                raise ValueError(
                    f"{where}: augment image_shape {self.image_shape} needs rows of "
                    f"{size} features; {rows} {n_features} features.")

    def apply(self, X_batch, seed, epoch, step, work=None):
        """The augmented copy of a training mini-batch; X_batch is not modified.

        Parameters
        ----------
        X_batch : (n, n_features) float32 or float64 C-contiguous array
        seed : int >= 0
            fit's seed: the same (seed, epoch, step) gives the same bytes.
        epoch : int in [0, 2**31)
        step : int in [0, 2**32)
            The batch's index within its epoch.
        work : dict or None
            Where the output buffers are kept, one per batch size (and dtype), allocated
            on first use: a dict the caller owns (e.g. one per ``fit``), or None for a
            cache held by this Augment.

        Returns
        -------
        numpy.ndarray, X_batch's shape and dtype
            A work buffer: valid until the next ``apply`` with the same batch size and
            ``work``.
        """
        where = "Augment.apply"
        if not (isinstance(X_batch, np.ndarray) and X_batch.ndim == 2
                and X_batch.dtype in FLOAT_DTYPES and X_batch.flags.c_contiguous):
            raise TypeError(f"{where}: X_batch must be a 2-D C-contiguous float32 or "
                            f"float64 array; got {_describe(X_batch)}.")
        self.check(X_batch.shape[1], where, rows="X_batch has")
        seed = check_scalar("seed", seed, where=where, low=0, integer=True)
        epoch = check_scalar("epoch", epoch, where=where, low=0, high=_MAX_EPOCH,
                             high_open=True, integer=True)
        step = check_scalar("step", step, where=where, low=0, high=_MAX_STEP,
                            high_open=True, integer=True)
        if work is None:
            work = self._work
        elif not isinstance(work, dict):
            raise TypeError(f"{where}: work must be a dict (or None); got {work!r}.")
        width = X_batch.shape[1]
        out = cached_work(work, X_batch.shape[0], X_batch.dtype,
                          lambda n, dtype: np.empty((n, width), dtype), X_batch.shape)
        noise_seed, image_seed = self._stream_seeds(seed)
        counter = (epoch << 32) | step
        source = X_batch
        if self._images_on:
            channels, height, width = ((1,) + self.image_shape)[-3:]
            kernels.shift_flip_images(X_batch, channels, height, width, self.max_shift,
                                      self.flip, image_seed, counter, out,
                                      kernels.parallel_arg(X_batch.size))
            source = out
        if self.noise > 0.0:
            kernels.add_gaussian_noise(source, self.noise, noise_seed, counter, out,
                                       kernels.parallel_arg(source.size))
        return out

    def _plan_args(self, seed, epoch, step, out):
        """What ``kernels.plan.train_step`` needs to run ``apply`` into ``mats[out]``."""
        noise_seed, image_seed = self._stream_seeds(seed)
        channels, height, width = ((1,) + (self.image_shape or (1, 1)))[-3:]
        return (out, self.noise, noise_seed, image_seed, channels, height, width,
                self.max_shift, self.flip, (epoch << 32) | step, self._images_on)

    def _stream_seeds(self, seed):
        if self._seeds is None or self._seeds[0] != seed:
            self._seeds = (seed, derived_seed(seed, _NOISE_TAG), derived_seed(seed, _IMAGE_TAG))
        return self._seeds[1:]

    def __getstate__(self):  # copies and pickles carry the settings, not the buffers
        state = dict(self.__dict__)
        state["_work"], state["_seeds"] = {}, None
        return state

    def __repr__(self):
        shape = "" if self.image_shape is None else f", image_shape={self.image_shape}"
        return (f"Augment(noise={self.noise}{shape}, max_shift={self.max_shift}, "
                f"flip={self.flip})")


def _check_image_shape(image_shape, where):
    if image_shape is None:
        return None
    if not (isinstance(image_shape, (tuple, list)) and len(image_shape) in (2, 3)
            and all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))
                    for v in image_shape)):
        raise TypeError(f"{where}: image_shape must be a pair of ints (height, width) or a "
                        f"triple (channels, height, width); got {image_shape!r}.")
    shape = tuple(int(v) for v in image_shape)
    if min(shape) < 1:
        raise ValueError(f"{where}: image_shape must hold positive sizes; got {shape}.")
    return shape


def _describe(a):
    if isinstance(a, np.ndarray):
        layout = "" if a.flags.c_contiguous else ", not C-contiguous"
        return f"array of shape {a.shape}, dtype {a.dtype}{layout}"
    return type(a).__name__
