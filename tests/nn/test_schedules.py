"""nn.schedules: the decay formulas, the notes' table, validation, and fit(schedule=...)."""
import inspect
import math

import numpy as np
import pytest

import nn
from nn.schedules import (
    SCHEDULE_TYPES, ExponentialDecay, IntervalDecay, InverseSqrtDecay, InverseSqrtStepDecay,
    InverseTimeDecay, StaircaseDecay,
)


def test_inverse_time_decay_gives_the_notes_table():
    """lr0 = 0.2, decay_rate = 1: 0.1, 0.0667, 0.05, 0.04 at epochs 1 to 4 (fit counts
    epochs from 0, so epoch 0 has lr0)."""
    s = InverseTimeDecay(lr0=0.2, decay_rate=1)
    assert s(0) == 0.2
    assert [round(s(e), 4) for e in (1, 2, 3, 4)] == [0.1, 0.0667, 0.05, 0.04]


@pytest.mark.parametrize("schedule, formula", [
    (InverseTimeDecay(lr0=0.3, decay_rate=0.5), lambda e: 0.3 / (1 + 0.5 * e)),
    (ExponentialDecay(lr0=0.3), lambda e: 0.95 ** e * 0.3),
    (ExponentialDecay(lr0=0.3, base=0.5), lambda e: 0.5 ** e * 0.3),
    (InverseSqrtDecay(lr0=0.3, k=2.0), lambda e: 2.0 / math.sqrt(max(e, 1)) * 0.3),
    (InverseSqrtStepDecay(lr0=0.3, k=0.5), lambda t: 0.5 / math.sqrt(max(t, 1)) * 0.3),
    (StaircaseDecay(lr0=0.3, drop=0.5, every=3), lambda e: 0.3 * 0.5 ** (e // 3)),
    (IntervalDecay(lr0=0.3, decay_rate=1.0, time_interval=4),
     lambda e: 0.3 / (1 + math.floor(e / 4))),
], ids=["inverse_time", "exponential", "exponential_base", "inverse_sqrt", "inverse_sqrt_step",
        "staircase", "interval"])
def test_schedule_formulas(schedule, formula):
    for epoch in range(0, 25):
        assert schedule(epoch) == pytest.approx(formula(epoch), rel=1e-15)
        assert isinstance(schedule(epoch), float)


def test_schedules_decrease_and_steps_are_discrete():
    stair = StaircaseDecay(lr0=1.0, drop=0.1, every=10)
    assert [stair(e) for e in (0, 9, 10, 19, 20)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    interval = IntervalDecay(lr0=0.2, decay_rate=1.0, time_interval=10)
    assert [interval(e) for e in (0, 9, 10, 20)] == pytest.approx([0.2, 0.2, 0.1, 0.2 / 3])
    assert InverseSqrtDecay(lr0=0.1)(0) == InverseSqrtDecay(lr0=0.1)(1) == 0.1  # epoch 0 as 1
    assert InverseSqrtDecay(lr0=0.1)(4) == pytest.approx(0.05)
    assert InverseSqrtStepDecay.per_step and not InverseSqrtDecay.per_step


def test_schedule_repr_and_config_round_trip():
    s = InverseTimeDecay(lr0=0.2, decay_rate=1)
    assert repr(s) == "InverseTimeDecay(lr0=0.2, decay_rate=1.0)"
    assert repr(StaircaseDecay(0.1, 0.5, 10)) == "StaircaseDecay(lr0=0.1, drop=0.5, every=10)"
    for cls in SCHEDULE_TYPES.values():
        args = {"lr0": 0.1, "decay_rate": 0.5, "time_interval": 2, "base": 0.9, "k": 2.0,
                "drop": 0.5, "every": 3}
        names = list(inspect.signature(cls).parameters)
        s = cls(**{n: args[n] for n in names})
        assert list(s.config()) == names
        again = SCHEDULE_TYPES[type(s).__name__](**s.config())
        assert repr(again) == repr(s)
        assert again(7) == s(7)


@pytest.mark.parametrize("factory, kwargs, error, message", [
    (InverseTimeDecay, dict(lr0=0.0, decay_rate=1.0), ValueError,
     r"InverseTimeDecay: lr0 must be > 0\.0; got 0\.0"),
    (InverseTimeDecay, dict(lr0=0.1, decay_rate=-1.0), ValueError,
     r"InverseTimeDecay: decay_rate must be >= 0\.0; got -1\.0"),
    (InverseTimeDecay, dict(lr0="a", decay_rate=1.0), TypeError,
     r"InverseTimeDecay: lr0 must be a real number; got 'a'"),
    (ExponentialDecay, dict(lr0=0.1, base=1.5), ValueError,
     r"ExponentialDecay: base must be <= 1\.0; got 1\.5"),
    (ExponentialDecay, dict(lr0=0.1, base=0.0), ValueError,
     r"ExponentialDecay: base must be > 0\.0; got 0\.0"),
    (InverseSqrtDecay, dict(lr0=0.1, k=0.0), ValueError,
     r"InverseSqrtDecay: k must be > 0\.0; got 0\.0"),
    (InverseSqrtStepDecay, dict(lr0=float("nan")), ValueError,
     r"InverseSqrtStepDecay: lr0 must be finite; got nan"),
    (StaircaseDecay, dict(lr0=0.1, drop=0.5, every=0), ValueError,
     r"StaircaseDecay: every must be >= 1; got 0"),
    (StaircaseDecay, dict(lr0=0.1, drop=0.5, every=2.5), TypeError,
     r"StaircaseDecay: every must be an integer; got 2\.5"),
    (StaircaseDecay, dict(lr0=0.1, drop=2.0, every=2), ValueError,
     r"StaircaseDecay: drop must be <= 1\.0; got 2\.0"),
    (IntervalDecay, dict(lr0=0.1, decay_rate=1.0, time_interval=0), ValueError,
     r"IntervalDecay: time_interval must be >= 1; got 0"),
])
def test_schedule_rejects_bad_arguments(factory, kwargs, error, message):
    with pytest.raises(error, match=message):
        factory(**kwargs)


def test_schedule_rejects_bad_epoch():
    s = InverseTimeDecay(lr0=0.1, decay_rate=1.0)
    with pytest.raises(ValueError, match=r"InverseTimeDecay: epoch must be >= 0; got -1"):
        s(-1)
    with pytest.raises(TypeError, match=r"InverseTimeDecay: epoch must be an integer; got 1\.5"):
        s(1.5)
    with pytest.raises(ValueError, match=r"InverseSqrtStepDecay: step must be >= 0; got -2"):
        InverseSqrtStepDecay(lr0=0.1)(-2)


# --- fit(schedule=...) ------------------------------------------------------------------------

class RecordingSGD(nn.SGD):
    """SGD that records the learning rate of every step."""

    def __init__(self, lr=0.01):
        super().__init__(lr)
        self.rates = []

    def step(self, params, grads):
        self.rates.append(self.lr)
        super().step(params, grads)


def _model():
    return nn.Sequential([nn.Dense(3, 6, activation="tanh"), nn.Dense(6, 3, use_bias=False)],
                         dtype=np.float64, seed=0)


def test_fit_inverse_time_decay_sets_lr_each_epoch_and_history_records_it(blobs):
    X, y = blobs
    opt = RecordingSGD()
    history = _model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=opt, epochs=5,
                           batch_size=20,
                           schedule=InverseTimeDecay(lr0=0.2, decay_rate=1.0))
    want = [0.2 / (1 + e) for e in range(5)]
    assert history["lr"] == pytest.approx(want, rel=1e-15)
    assert opt.rates == pytest.approx(np.repeat(want, 3), rel=1e-15)  # 3 steps per epoch
    assert opt.lr == pytest.approx(want[-1])


@pytest.mark.parametrize("schedule", [
    ExponentialDecay(lr0=0.1), InverseSqrtDecay(lr0=0.1, k=1.0),
    StaircaseDecay(lr0=0.1, drop=0.5, every=2), IntervalDecay(0.1, 1.0, 2),
    lambda epoch: 0.1 if epoch < 2 else 0.01,                       # manual decay
], ids=["exponential", "inverse_sqrt", "staircase", "interval", "manual"])
def test_fit_any_schedule_sets_the_epoch_rate(blobs, schedule):
    X, y = blobs
    history = _model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(),
                           epochs=5, batch_size=32, schedule=schedule, initial_epoch=1)
    assert history.epochs == [2, 3, 4, 5]                        # counted from 1
    assert history["lr"] == [schedule(e) for e in (1, 2, 3, 4)]  # epochs done before


def test_fit_per_step_schedule_is_called_with_the_global_step(blobs):
    X, y = blobs  # 60 rows, batch 16: 4 steps per epoch
    opt = RecordingSGD()
    s = InverseSqrtStepDecay(lr0=0.5, k=1.0)
    history = _model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=opt, epochs=3,
                           batch_size=16, schedule=s, initial_epoch=1)
    steps = range(4, 12)  # epochs 1 and 2, counted as if epoch 0 had run
    assert opt.rates == [s(t) for t in steps]
    assert opt.rates[0] == 0.5 / 2.0
    assert history["lr"] == [s(7), s(11)]  # each epoch's last step


def test_fit_rejects_a_schedule_giving_a_bad_rate(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match=r"Sequential\.fit: schedule\(2\) must be > 0\.0"):
        _model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=4,
                     schedule=lambda e: 0.1 - 0.05 * e)

    class BadStep:
        per_step = True

        def __call__(self, t):
            return -1.0 if t == 3 else 0.1
    with pytest.raises(ValueError, match=r"Sequential\.fit: schedule\(step\) must be > 0\.0; "
                                         r"got -1\.0"):
        _model().fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=4, batch_size=16,
                     schedule=BadStep())
