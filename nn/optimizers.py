"""Optimizers: validated hyperparameters, explicit named state, one kernel per step.

An optimizer updates the model's one flat parameter buffer in place from its one
flat gradient buffer. Its state is a small named record of arrays (saved with the
model by ``nn.save``); ``lr`` may be changed between steps (schedules do).
"""
from typing import NamedTuple

import numpy as np

import kernels

from ._validation import check_scalar


class SGDState(NamedTuple):
    step: int


class Optimizer:
    """Base class: ``lr``, a state record, and ``step(params, grads)``."""

    def __init__(self, lr):
        self.lr = lr
        self.state = None

    @property
    def lr(self):
        """The learning rate of the next step (> 0)."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = check_scalar("lr", value, where=type(self).__name__, low=0.0, low_open=True)

    def init(self, params):
        """A fresh state for a parameter buffer like ``params``."""
        raise NotImplementedError

    def step(self, params, grads):
        """One update of ``params`` in place from ``grads``; creates the state if needed."""
        if self.state is None or not self._state_fits(params):
            self.state = self.init(params)
        self.state = self._update(params, grads, self.state)

    def _state_fits(self, params):
        return all(a.shape == params.shape and a.dtype == params.dtype
                   for a in self.state if isinstance(a, np.ndarray))

    def config(self):
        return {"lr": self.lr}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Plain (mini-batch) gradient descent: ``w -= lr * dw``.

    Parameters
    ----------
    lr : float
        Learning rate, > 0.
    """

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def init(self, params):
        return SGDState(step=0)

    def _update(self, params, grads, state):
        kernels.sgd_step(params, grads, self.lr)
        return state._replace(step=state.step + 1)


OPTIMIZER_TYPES = {cls.__name__: cls for cls in (SGD,)}


def check_optimizer(optimizer, where):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{where}: optimizer must be an optimizer object such as "
                        f"nn.SGD(lr=0.01); got {optimizer!r}.")
    return optimizer
