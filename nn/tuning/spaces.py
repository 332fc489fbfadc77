"""Search spaces: one distribution per hyperparameter, each sampled on its own scale.

``Uniform``, ``LogUniform``, ``OneMinusLogUniform``, ``IntRange`` and ``Choice`` (all
``Distribution``), the checks of a space (a dict of name -> distribution or fixed
value), and the draws of a search: trial ``i``'s hyperparameters and seed come from
``(seed, i)`` alone (``sample_configs``).
"""
import math
import numbers

import numpy as np

from .._validation import check_bool, check_scalar


def _as_rng(rng, where):
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)
                       and rng >= 0):
        return np.random.default_rng(rng)
    raise TypeError(f"{where}: rng must be a numpy Generator, a seed (int >= 0) or None; "
                    f"got {rng!r}.")


class Distribution:
    """A distribution of one hyperparameter: ``sample(rng)`` draws a value.

    ``sample(rng)`` returns one Python scalar; ``sample(rng, size=n)`` a NumPy array
    (a list for ``Choice``). ``rng`` is a ``numpy.random.Generator`` or a seed.
    ``log_scale`` says whether the values are best plotted on a log axis.
    """

    log_scale = False

    def sample(self, rng=None, size=None):
        where = f"{type(self).__name__}.sample"
        rng = _as_rng(rng, where)
        if size is None:
            return self._scalar(self._draw(rng, None))
        size = check_scalar("size", size, where=where, low=0, integer=True)
        return self._draw(rng, size)

    def _draw(self, rng, size):
        raise NotImplementedError

    def _scalar(self, value):
        return float(value)

    def _args(self):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(map(repr, self._args()))})"

    def __eq__(self, other):
        return type(other) is type(self) and other._args() == self._args()

    def __hash__(self):
        return hash((type(self).__name__, repr(self._args())))


def _check_bounds(a, b, where, low=None, high=None, low_open=False, high_open=False):
    a = check_scalar("a", a, where=where, low=low, high=high, low_open=low_open,
                     high_open=high_open)
    b = check_scalar("b", b, where=where, low=low, high=high, low_open=low_open,
                     high_open=high_open)
    if not a < b:
        raise ValueError(f"{where}: a must be < b; got a={a}, b={b}.")
    return a, b


class Uniform(Distribution):
    """Uniform on [a, b): for a hyperparameter whose effect is linear in its value,
    such as a dropout ``keep_prob`` in [0.5, 1)."""

    def __init__(self, a, b):
        self.a, self.b = _check_bounds(a, b, "Uniform")

    def _draw(self, rng, size):
        return rng.uniform(self.a, self.b, size)

    def _args(self):
        return (self.a, self.b)


class LogUniform(Distribution):
    """``10**r`` with ``r`` uniform in ``[log10 a, log10 b]``, for ``0 < a < b``.

    A learning rate in [1e-4, 1] gets as many samples in [1e-4, 1e-3) as in [0.1, 1),
    where uniform sampling would put 90% of them in [0.1, 1).
    """

    log_scale = True

    def __init__(self, a, b):
        self.a, self.b = _check_bounds(a, b, "LogUniform", low=0.0, low_open=True)

    def _draw(self, rng, size):
        r = rng.uniform(math.log10(self.a), math.log10(self.b), size)
        return np.clip(10.0 ** r, self.a, self.b)

    def _args(self):
        return (self.a, self.b)


class OneMinusLogUniform(Distribution):
    """``1 - 10**r`` with ``r`` uniform in ``[log10(1-b), log10(1-a)]``, for
    ``0 <= a < b < 1``: the scale of an exponentially weighted average's beta.

    ``beta`` averages about ``1/(1-beta)`` values, and that count is what matters: in
    [0.9, 0.999], 0.9 to 0.99 (10 to 100 values) and 0.99 to 0.999 (100 to 1000) get
    as many samples each, where uniform sampling would put 91% in the first.
    """

    log_scale = False

    def __init__(self, a, b):
        self.a, self.b = _check_bounds(a, b, "OneMinusLogUniform", low=0.0, high=1.0,
                                       high_open=True)

    def _draw(self, rng, size):
        r = rng.uniform(math.log10(1.0 - self.b), math.log10(1.0 - self.a), size)
        return np.clip(1.0 - 10.0 ** r, self.a, self.b)

    def _args(self):
        return (self.a, self.b)


class IntRange(Distribution):
    """An integer in ``[low, high]`` (both included): uniform, or with ``log=True``
    log-uniform (``floor(e**r)``, ``r`` uniform in ``[ln low, ln(high + 1))``, so a
    hidden width in [16, 512] gets as many samples in 16..31 as in 256..511)."""

    def __init__(self, low, high, log=False):
        where = "IntRange"
        self.low = check_scalar("low", low, where=where, low=1 if log else None, integer=True)
        self.high = check_scalar("high", high, where=where, integer=True)
        if self.high < self.low:
            raise ValueError(f"{where}: high must be >= low ({self.low}); got {self.high}.")
        self.log = check_bool("log", log, where=where)
        self.log_scale = self.log

    def _draw(self, rng, size):
        if not self.log:
            return rng.integers(self.low, self.high + 1, size)
        r = rng.uniform(math.log(self.low), math.log(self.high + 1), size)
        return np.clip(np.floor(np.exp(r)), self.low, self.high).astype(np.int64)

    def _scalar(self, value):
        return int(value)

    def _args(self):
        return (self.low, self.high) + ((True,) if self.log else ())

    def __repr__(self):
        return f"IntRange({self.low}, {self.high}{', log=True' if self.log else ''})"


class Choice(Distribution):
    """One of ``options``, each with probability ``1/len(options)``: a batch size
    among [32, 64, 128], an optimizer among ["momentum", "adam"]."""

    def __init__(self, options):
        where = "Choice"
        if isinstance(options, (str, bytes, dict)) or not hasattr(options, "__iter__"):
            raise TypeError(f"{where}: options must be a list of values; got {options!r}.")
        self.options = list(options)
        if not self.options:
            raise ValueError(f"{where}: options is empty; give at least one value.")
        for i, value in enumerate(self.options):
            if not _is_constant(value):
                raise TypeError(f"{where}: options[{i}] must be a number, a string, a bool, "
                                f"None or a tuple of those; got {value!r}.")
        self.options = [_plain(v) for v in self.options]

    def _draw(self, rng, size):
        picks = rng.integers(0, len(self.options), size)
        if size is None:
            return self.options[int(picks)]
        return [self.options[int(i)] for i in picks]

    def _scalar(self, value):
        return value

    def _args(self):
        return (self.options,)


def _is_constant(value):
    if value is None or isinstance(value, (str, bool, np.bool_)):
        return True
    if isinstance(value, numbers.Real):
        return math.isfinite(value)
    if isinstance(value, tuple):
        return all(_is_constant(v) for v in value)
    return False


def _plain(value):
    """NumPy scalars as Python ones, so tables print and JSON encodes cleanly."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def _check_space(space, where):
    if not isinstance(space, dict):
        raise TypeError(f"{where}: space must be a dict of name -> distribution (e.g. "
                        f"{{'lr': LogUniform(1e-4, 1)}}); got {type(space).__name__}.")
    if not space:
        raise ValueError(f"{where}: space is empty; give at least one hyperparameter.")
    for name, value in space.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"{where}: space names must be non-empty strings; got {name!r}.")
        if isinstance(value, Distribution):
            continue
        if isinstance(value, list):
            raise TypeError(f"{where}: space[{name!r}] is a list; use Choice({value!r}) to "
                            f"sample among values, or a tuple for one fixed value.")
        if not _is_constant(value):
            raise TypeError(f"{where}: space[{name!r}] must be a Distribution (Uniform, "
                            f"LogUniform, OneMinusLogUniform, IntRange, Choice) or a fixed "
                            f"number, string or tuple; got {value!r}.")
    return space


def _check_seed(seed, where):
    return check_scalar("seed", seed, where=where, low=0, integer=True)


def _trial_draws(space, seed, index):
    """Trial ``index``'s hyperparameters and seed: a function of (seed, index) only."""
    params_rng = np.random.default_rng(np.random.SeedSequence([seed, index, 0]))
    params = {name: value.sample(params_rng) if isinstance(value, Distribution)
              else _plain(value) for name, value in space.items()}
    trial_seed = int(np.random.SeedSequence([seed, index, 1]).generate_state(1, np.uint32)[0])
    return params, trial_seed


def sample_configs(space, n, seed=0):
    """The first ``n`` configurations (dicts) that a search with this ``space`` and
    ``seed`` tries: configuration ``i`` depends on ``(seed, i)`` only."""
    where = "sample_configs"
    _check_space(space, where)
    n = check_scalar("n", n, where=where, low=0, integer=True)
    seed = _check_seed(seed, where)
    return [_trial_draws(space, seed, i)[0] for i in range(n)]
