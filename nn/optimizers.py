"""Optimizers: validated hyperparameters, explicit named state, one kernel per step.

An optimizer updates the model's one flat parameter buffer in place from its one
flat gradient buffer. Its state is a small named record of arrays (saved with the
model by ``nn.save``); ``lr`` may be changed between steps (schedules do).
"""
import math
from typing import NamedTuple

import numpy as np

import kernels

from ._layout import staggered_buffers
from ._validation import check_beta, check_choice, check_lr, check_scalar


class SGDState(NamedTuple):
    step: int


class MomentumState(NamedTuple):
    step: int
    v: np.ndarray          # velocity: same shape and dtype as the parameters


class RMSpropState(NamedTuple):
    step: int
    s: np.ndarray          # average of squared gradients: same shape and dtype as params


class AdamState(NamedTuple):
    step: int
    m: np.ndarray          # first moment average: same shape and dtype as params
    v: np.ndarray          # second moment average: same shape and dtype as params


def _state_arrays(params, count):
    """``count`` zeroed arrays like ``params`` (1-D), cut from one staggered block.

    The model's params and grads take the first two offsets of their own block; the
    state arrays are shifted past them (the leading empty entries), so that no two of
    the arrays a step streams through start at the same offset in a page.
    """
    return staggered_buffers([0, 0] + [params.shape[0]] * count, params.dtype)[2:]


def _check_eps(value, where):
    return check_scalar("eps", value, where=where, low=0.0, low_open=True)


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
        self._lr = check_lr(value, type(self).__name__)

    def init(self, params):
        """A fresh state for a parameter buffer like ``params``."""
        raise NotImplementedError

    def step(self, params, grads):
        """One update of ``params`` in place from ``grads``; creates the state if needed."""
        self._ensure_state(params)
        self.state = self._update(params, grads, self.state)

    def _ensure_state(self, params):
        if self.state is None or not self._state_fits(params):
            self.state = self.init(params)

    def _plan_args(self, params):
        """``(slot, arguments)`` of the update in ``kernels.plan.train_step`` for the
        next step (the compiled plan's ``step``); ``_advance`` counts it once made."""
        raise NotImplementedError

    def _advance(self):
        self.state = self.state._replace(step=self.state.step + 1)

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

    def _plan_args(self, params):
        self._ensure_state(params)
        return "sgd", (self.lr,)

    def _update(self, params, grads, state):
        kernels.sgd_step(params, grads, self.lr, kernels.parallel_arg(params.size))
        return state._replace(step=state.step + 1)


class Momentum(Optimizer):
    """Gradient descent with momentum: an exponentially weighted average of gradients.

    ``v = beta*v + (1-beta)*dw``, then ``w -= lr*v`` (v starts at zero).

    Parameters
    ----------
    lr : float
        Learning rate, > 0.
    beta : float, default 0.9
        Weight of the old average, in [0, 1); ``beta=0`` is plain gradient descent.
        The average covers about ``1/(1-beta)`` steps.

    Notes
    -----
    This is the course's average. ``torch.optim.SGD(lr, momentum=mu)`` keeps
    ``v = mu*v + g`` instead, a sum ``1/(1-mu)`` times larger: our ``Momentum(lr, beta)``
    takes the same steps as torch's with ``lr*(1-beta)`` and ``momentum=beta``, up to
    rounding. No bias correction: the first steps are smaller while v warms up.

    Examples
    --------
    >>> import nn
    >>> nn.Momentum(lr=0.05, beta=0.9)
    Momentum(lr=0.05, beta=0.9)
    """

    def __init__(self, lr, beta=0.9):
        super().__init__(lr)
        self.beta = check_beta("beta", beta, type(self).__name__)

    def init(self, params):
        (v,) = _state_arrays(params, 1)
        return MomentumState(step=0, v=v)

    def _plan_args(self, params):
        self._ensure_state(params)
        return "momentum", (self.state.v, self.lr, self.beta)

    def _update(self, params, grads, state):
        kernels.momentum_step(params, grads, state.v, self.lr, self.beta,
                              kernels.parallel_arg(params.size))
        return state._replace(step=state.step + 1)

    def config(self):
        return {"lr": self.lr, "beta": self.beta}


class RMSprop(Optimizer):
    """RMSprop: divide each step by a running root mean square of the gradients.

    ``s = beta*s + (1-beta)*dw**2``, then ``w -= lr * dw / (sqrt(s) + eps)`` (s starts
    at zero).

    Parameters
    ----------
    lr : float
        Learning rate, > 0.
    beta : float, default 0.9
        Weight of the old average, in [0, 1). torch calls it ``alpha`` (default 0.99).
    eps : float, default 1e-8
        > 0, added to the square root (outside it, as torch and Keras do; the course's
        notes write ``sqrt(s + eps)``).

    Examples
    --------
    >>> import nn
    >>> nn.RMSprop(lr=1e-3)
    RMSprop(lr=0.001, beta=0.9, eps=1e-08)
    """

    def __init__(self, lr, beta=0.9, eps=1e-8):
        super().__init__(lr)
        where = type(self).__name__
        self.beta = check_beta("beta", beta, where)
        self.eps = _check_eps(eps, where)

    def init(self, params):
        (s,) = _state_arrays(params, 1)
        return RMSpropState(step=0, s=s)

    def _plan_args(self, params):
        self._ensure_state(params)
        return "rmsprop", (self.state.s, self.lr, self.beta, self.eps)

    def _update(self, params, grads, state):
        kernels.rmsprop_step(params, grads, state.s, self.lr, self.beta, self.eps,
                             kernels.parallel_arg(params.size))
        return state._replace(step=state.step + 1)

    def config(self):
        return {"lr": self.lr, "beta": self.beta, "eps": self.eps}


class Adam(Optimizer):
    """Adam: momentum and RMSprop together, with bias correction.

    At step t = 1, 2, ...: ``m = beta1*m + (1-beta1)*dw``, ``v = beta2*v +
    (1-beta2)*dw**2``, ``m_hat = m/(1-beta1**t)``, ``v_hat = v/(1-beta2**t)``, then
    ``w -= lr * m_hat / (sqrt(v_hat) + eps)``. The two corrections are computed here
    once per step, in float64; the kernel does the rest in torch's order
    (``w -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps)``), so float64 runs match
    ``torch.optim.Adam`` to rounding.

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, > 0.
    beta1 : float, default 0.9
        Weight of the old first-moment average (momentum), in [0, 1).
    beta2 : float, default 0.999
        Weight of the old second-moment average (RMSprop), in [0, 1).
    eps : float, default 1e-8
        > 0, added to ``sqrt(v_hat)`` (outside the root, as torch and Keras do).

    Examples
    --------
    >>> import nn
    >>> nn.Adam()
    Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08)
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        where = type(self).__name__
        self.beta1 = check_beta("beta1", beta1, where)
        self.beta2 = check_beta("beta2", beta2, where)
        self.eps = _check_eps(eps, where)

    def init(self, params):
        m, v = _state_arrays(params, 2)
        return AdamState(step=0, m=m, v=v)

    def _corrections(self, t):
        """Step t's bias corrections ``(1 - beta1**t, sqrt(1 - beta2**t))``, float64."""
        return 1.0 - self.beta1 ** t, math.sqrt(1.0 - self.beta2 ** t)

    def _plan_args(self, params):
        self._ensure_state(params)
        state = self.state
        bc1, bc2_sqrt = self._corrections(state.step + 1)
        return "adam", (state.m, state.v, self.lr, self.beta1, self.beta2, self.eps, bc1,
                        bc2_sqrt)

    def _update(self, params, grads, state):
        t = state.step + 1
        bc1, bc2_sqrt = self._corrections(t)
        kernels.adam_step(params, grads, state.m, state.v, self.lr, self.beta1, self.beta2,
                          self.eps, bc1, bc2_sqrt, kernels.parallel_arg(params.size))
        return state._replace(step=t)

    def config(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


OPTIMIZER_TYPES = {cls.__name__: cls for cls in (SGD, Momentum, RMSprop, Adam)}


def check_optimizer(optimizer, where):
    if isinstance(optimizer, type) and issubclass(optimizer, Optimizer):
        raise TypeError(f"{where}: optimizer must be an optimizer object; got the class "
                        f"nn.{optimizer.__name__} itself. Call it: "
                        f"optimizer=nn.{optimizer.__name__}(lr=...).")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{where}: optimizer must be an optimizer object such as "
                        f"nn.SGD(lr=0.01); got {optimizer!r}.")
    return optimizer


#: The optimizers by the names the CLI, the estimator and tuning take.
OPTIMIZER_NAMES = {"sgd": SGD, "momentum": Momentum, "rmsprop": RMSprop, "adam": Adam}


def optimizer_by_name(name, lr, *, beta=0.9, beta1=0.9, beta2=0.999, where="optimizer_by_name"):
    """``"sgd"``, ``"momentum"``, ``"rmsprop"`` or ``"adam"`` with learning rate ``lr``;
    ``beta`` is Momentum's and RMSprop's averaging weight, ``beta1``/``beta2`` Adam's.
    Errors name ``where``."""
    check_choice("optimizer", name, OPTIMIZER_NAMES, where=where)
    if name == "sgd":
        return SGD(check_lr(lr, where))
    if name == "adam":
        return Adam(check_lr(lr, where), beta1=check_beta("beta1", beta1, where),
                    beta2=check_beta("beta2", beta2, where))
    return OPTIMIZER_NAMES[name](check_lr(lr, where), beta=check_beta("beta", beta, where))
