"""Learning-rate decay: callables ``schedule(epoch) -> lr`` for ``fit(schedule=...)``.

``fit`` calls a schedule at the start of every epoch with the epoch number counted from
0 and sets the optimizer's ``lr`` to the result (``History["lr"]`` records it). A
schedule whose ``per_step`` attribute is True is called instead before every step, with
the step number counted from 0 over the whole training (``epoch * steps_per_epoch +
step``). Any callable works, e.g. a manual decay ``lambda epoch: 0.1 if epoch < 10 else
0.01``.

>>> import nn
>>> decay = nn.schedules.InverseTimeDecay(lr0=0.2, decay_rate=1.0)
>>> [round(decay(epoch), 4) for epoch in range(5)]
[0.2, 0.1, 0.0667, 0.05, 0.04]
"""
import math

from ._validation import check_scalar


class Schedule:
    """Base class: validated arguments, ``__call__(epoch) -> lr``, ``config`` and repr."""

    #: Called with the global step (True) or the epoch (False) by ``fit``.
    per_step = False

    def __call__(self, epoch):
        where = type(self).__name__
        name = "step" if self.per_step else "epoch"
        return self._rate(check_scalar(name, epoch, where=where, low=0, integer=True))

    def _rate(self, epoch):
        raise NotImplementedError

    def config(self):
        """The constructor's arguments, JSON-serialisable."""
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _lr0(value, where):
    return check_scalar("lr0", value, where=where, low=0.0, low_open=True)


class InverseTimeDecay(Schedule):
    """``lr = lr0 / (1 + decay_rate * epoch)``.

    Parameters
    ----------
    lr0 : float > 0
        The rate at epoch 0.
    decay_rate : float >= 0

    Examples
    --------
    The notes' table (lr0=0.2, decay_rate=1): 0.1, 0.0667, 0.05, 0.04 at epochs 1 to 4.

    >>> s = InverseTimeDecay(lr0=0.2, decay_rate=1.0)
    >>> [round(s(e), 4) for e in (1, 2, 3, 4)]
    [0.1, 0.0667, 0.05, 0.04]
    """

    def __init__(self, lr0, decay_rate):
        where = type(self).__name__
        self.lr0 = _lr0(lr0, where)
        self.decay_rate = check_scalar("decay_rate", decay_rate, where=where, low=0.0)

    def _rate(self, epoch):
        return self.lr0 / (1.0 + self.decay_rate * epoch)

    def config(self):
        return {"lr0": self.lr0, "decay_rate": self.decay_rate}


class ExponentialDecay(Schedule):
    """``lr = base**epoch * lr0``.

    Parameters
    ----------
    lr0 : float > 0
    base : float in (0, 1], default 0.95

    Examples
    --------
    >>> round(ExponentialDecay(lr0=0.1)(2), 6)
    0.09025
    """

    def __init__(self, lr0, base=0.95):
        where = type(self).__name__
        self.lr0 = _lr0(lr0, where)
        self.base = check_scalar("base", base, where=where, low=0.0, low_open=True, high=1.0)

    def _rate(self, epoch):
        return self.base ** epoch * self.lr0

    def config(self):
        return {"lr0": self.lr0, "base": self.base}


class InverseSqrtDecay(Schedule):
    """``lr = k / sqrt(epoch) * lr0``, with epoch 0 taken as 1 (so epochs 0 and 1 give
    ``k * lr0``; the formula has no value at 0).

    Parameters
    ----------
    lr0 : float > 0
    k : float > 0, default 1.0

    Examples
    --------
    >>> s = InverseSqrtDecay(lr0=0.1, k=1.0)
    >>> [round(s(e), 4) for e in (0, 1, 4)]
    [0.1, 0.1, 0.05]
    """

    def __init__(self, lr0, k=1.0):
        where = type(self).__name__
        self.lr0 = _lr0(lr0, where)
        self.k = check_scalar("k", k, where=where, low=0.0, low_open=True)

    def _rate(self, epoch):
        return self.k / math.sqrt(max(epoch, 1)) * self.lr0

    def config(self):
        return {"lr0": self.lr0, "k": self.k}


class InverseSqrtStepDecay(InverseSqrtDecay):
    """``lr = k / sqrt(t) * lr0`` per mini-batch step t, with step 0 taken as 1.

    ``fit`` calls it before every step with the step count over the whole training,
    from 0 (``per_step = True``). ``History["lr"]`` records the rate of each epoch's
    last step.

    Examples
    --------
    >>> s = InverseSqrtStepDecay(lr0=0.1, k=2.0)
    >>> s.per_step, round(s(100), 4)
    (True, 0.02)
    """

    per_step = True


class StaircaseDecay(Schedule):
    """Discrete staircase: ``lr = lr0 * drop**(epoch // every)``.

    Parameters
    ----------
    lr0 : float > 0
    drop : float in (0, 1]
        Factor applied at each stair.
    every : int >= 1
        Epochs per stair.

    Examples
    --------
    >>> s = StaircaseDecay(lr0=0.1, drop=0.5, every=10)
    >>> [s(e) for e in (0, 9, 10, 25)]
    [0.1, 0.1, 0.05, 0.025]
    """

    def __init__(self, lr0, drop, every):
        where = type(self).__name__
        self.lr0 = _lr0(lr0, where)
        self.drop = check_scalar("drop", drop, where=where, low=0.0, low_open=True, high=1.0)
        self.every = check_scalar("every", every, where=where, low=1, integer=True)

    def _rate(self, epoch):
        return self.lr0 * self.drop ** (epoch // self.every)

    def config(self):
        return {"lr0": self.lr0, "drop": self.drop, "every": self.every}


class IntervalDecay(Schedule):
    """Inverse time decay applied once every ``time_interval`` epochs:
    ``lr = lr0 / (1 + decay_rate * floor(epoch / time_interval))``.

    Parameters
    ----------
    lr0 : float > 0
    decay_rate : float >= 0
    time_interval : int >= 1

    Examples
    --------
    >>> s = IntervalDecay(lr0=0.2, decay_rate=1.0, time_interval=100)
    >>> [round(s(e), 4) for e in (0, 99, 100, 250)]
    [0.2, 0.2, 0.1, 0.0667]
    """

    def __init__(self, lr0, decay_rate, time_interval):
        where = type(self).__name__
        self.lr0 = _lr0(lr0, where)
        self.decay_rate = check_scalar("decay_rate", decay_rate, where=where, low=0.0)
        self.time_interval = check_scalar("time_interval", time_interval, where=where, low=1,
                                          integer=True)

    def _rate(self, epoch):
        return self.lr0 / (1.0 + self.decay_rate * (epoch // self.time_interval))

    def config(self):
        return {"lr0": self.lr0, "decay_rate": self.decay_rate,
                "time_interval": self.time_interval}


SCHEDULE_TYPES = {cls.__name__: cls for cls in (
    InverseTimeDecay, ExponentialDecay, InverseSqrtDecay, InverseSqrtStepDecay,
    StaircaseDecay, IntervalDecay)}

__all__ = ["Schedule", "InverseTimeDecay", "ExponentialDecay", "InverseSqrtDecay",
           "InverseSqrtStepDecay", "StaircaseDecay", "IntervalDecay", "SCHEDULE_TYPES"]
