"""Weight initializers, each drawing from a seeded ``numpy.random.Generator``.

| name | W drawn as |
| --- | --- |
| ``"zeros"`` | 0 (every hidden unit stays identical: the symmetry the notes warn about) |
| ``"small"`` | 0.01 * randn |
| ``"large"`` | 10 * randn (saturates tanh and sigmoid: a demonstration of what not to do) |
| ``"he"`` | randn * sqrt(2 / n_in) (for ReLU) |
| ``"xavier"`` | randn * sqrt(1 / n_in) (for tanh) |
| ``"glorot"`` | randn * sqrt(2 / (n_in + n_out)) |

Biases start at zero.
"""
import math

import numpy as np

from ._validation import check_choice


def _scale(name, n_in, n_out):
    return {
        "zeros": 0.0,
        "small": 0.01,
        "large": 10.0,
        "he": math.sqrt(2.0 / n_in),
        "xavier": math.sqrt(1.0 / n_in),
        "glorot": math.sqrt(2.0 / (n_in + n_out)),
    }[name]


INITIALIZERS = ("zeros", "small", "large", "he", "xavier", "glorot")


def initialize(name, n_in, n_out, rng, out):
    """Fill ``out`` (n_in, n_out) with weights drawn by initializer ``name`` from ``rng``.

    The draw is made in float64 and cast, so float32 and float64 models built with the
    same seed start from the same weights up to rounding.
    """
    check_choice("init", name, INITIALIZERS, where="initialize")
    if name == "zeros":
        out[...] = 0
    else:
        out[...] = rng.standard_normal((n_in, n_out)) * _scale(name, n_in, n_out)
    return out
