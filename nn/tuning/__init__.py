"""Hyperparameter search: random sampling on the right scale, many models at once.

The notes' third week, as code:

* **Search spaces** sample each hyperparameter on its own scale: ``Uniform``,
  ``LogUniform`` (a learning rate in [1e-4, 1] gets as many samples per decade),
  ``OneMinusLogUniform`` (a beta in [0.9, 0.999], even on the scale of ``1/(1-beta)``),
  ``IntRange`` and ``Choice``.
* ``random_search`` tries ``n_trials`` random configurations rather than a grid, many
  at once: in local worker processes (one per core, each capped to one Numba and BLAS
  thread) or on any ``concurrent.futures.Executor``, such as a Dask ``distributed``
  client's ``client.get_executor()``. Trial ``i`` draws its hyperparameters and its seed
  from ``(seed, i)`` alone, so the results do not depend on the executor or the order
  in which trials finish.
* ``successive_halving`` trains every configuration a few epochs, keeps the best
  ``1/eta`` and resumes them from their checkpoints with ``eta`` times the budget.
* ``Babysitter`` (from ``nn.callbacks``) is the other way of the notes: watch one model
  train and change its learning rate, checkpoint it or stop it while ``fit`` runs.

>>> import nn.tuning as tuning
>>> space = {"lr": tuning.LogUniform(1e-4, 1), "beta1": tuning.OneMinusLogUniform(0.9, 0.999)}
>>> [sorted(p) for p in tuning.sample_configs(space, 2, seed=0)]
[['beta1', 'lr'], ['beta1', 'lr']]

Objectives run in other processes must be picklable: a module-level function, or an
instance of a module-level class (``mlp_objective(...)`` returns one). A script that
starts local workers must guard its entry point with ``if __name__ == "__main__":``
(worker processes are started with ``spawn`` and import the main module); without it
the search stops at once with a RuntimeError that says so.

The modules: ``spaces`` (the distributions), ``results`` (``Trial``, ``SearchResults``),
``executors`` (where trials run, and the worker processes), ``search`` (the two
searches), ``objective`` (``mlp_objective``).
"""
from ..callbacks import Babysitter
from .executors import SerialExecutor
from .objective import MLPObjective, mlp_objective
from .results import SearchResults, Trial
from .search import random_search, successive_halving
from .spaces import (Choice, Distribution, IntRange, LogUniform, OneMinusLogUniform, Uniform,
                     sample_configs)

__all__ = [
    "Babysitter", "Choice", "Distribution", "IntRange", "LogUniform", "MLPObjective",
    "OneMinusLogUniform", "SearchResults", "SerialExecutor", "Trial", "Uniform",
    "mlp_objective", "random_search", "sample_configs", "successive_halving",
]
