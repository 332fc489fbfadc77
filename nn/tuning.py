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
* ``Babysitter`` is the other way of the notes: watch one model train and change its
  learning rate, checkpoint it or stop it while ``fit`` runs.

>>> import nn.tuning as tuning
>>> space = {"lr": tuning.LogUniform(1e-4, 1), "beta1": tuning.OneMinusLogUniform(0.9, 0.999)}
>>> [sorted(p) for p in tuning.sample_configs(space, 2, seed=0)]
[['beta1', 'lr'], ['beta1', 'lr']]

Objectives run in other processes must be picklable: a module-level function, or an
instance of a module-level class (``mlp_objective(...)`` returns one). A script that
starts local workers must guard its entry point with ``if __name__ == "__main__":``
(worker processes are started with ``spawn`` and import the main module); without it
the search stops at once with a RuntimeError that says so.
"""
import concurrent.futures as cf
import contextlib
import inspect
import json
import math
import multiprocessing
import numbers
import os
import pickle
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import numpy as np

from ._validation import check_array, check_bool, check_choice, check_dtype, check_scalar
from .training import Callback, _epoch_path

__all__ = [
    "Babysitter", "Choice", "Distribution", "IntRange", "LogUniform", "MLPObjective",
    "OneMinusLogUniform", "SearchResults", "SerialExecutor", "Trial", "Uniform",
    "mlp_objective", "random_search", "sample_configs", "successive_halving",
]


# -- search spaces ----------------------------------------------------------------------

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


# -- trials and their table -------------------------------------------------------------

@dataclass(repr=False)
class Trial:
    """One configuration's outcome.

    ``index`` (its number in the search), ``params``, ``seed`` (for the model and the
    shuffling), ``status`` ("ok" or "failed"), ``metrics`` (the objective's dict, plus
    ``time``), ``error`` (for a failed trial: the exception type and message). After
    successive halving, ``rung`` and ``epochs`` are the last rung the configuration
    reached and its epoch count, ``checkpoint`` its model file (with ``workdir``), and
    ``history`` a list of ``(epochs, metrics)``, one per rung it ran.
    """

    index: int
    params: dict
    seed: int
    status: str
    metrics: dict = field(default_factory=dict)
    error: str = None
    rung: int = None
    epochs: int = None
    checkpoint: str = None
    history: list = None

    @property
    def ok(self):
        return self.status == "ok"

    def to_dict(self):
        """The trial as one flat dict: trial, [rung, epochs], the params, the metrics,
        status, error, seed (a metric named like a param is prefixed ``metric_``)."""
        row = {"trial": self.index}
        if self.rung is not None:
            row["rung"], row["epochs"] = self.rung, self.epochs
        for name, value in self.params.items():
            row[name if name not in row else "param_" + name] = value
        for name, value in self.metrics.items():
            row[name if name not in row else "metric_" + name] = value
        row.update(status=self.status, error=self.error, seed=self.seed)
        if self.checkpoint is not None:
            row["checkpoint"] = self.checkpoint
        return row

    def summary(self, metric=None):
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        head = f"trial {self.index}"
        if self.rung is not None:
            head += f" ({self.epochs} epoch{'s' if self.epochs != 1 else ''})"
        if not self.ok:
            return f"{head} failed: {self.error}  ({params})"
        shown = metric if metric in self.metrics else next(iter(self.metrics), None)
        value = f"{shown} {_fmt(self.metrics[shown])}" if shown is not None else "ok"
        secs = self.metrics.get("time")
        return f"{head}: {value}  ({params})" + (f"  {secs:.2f}s" if secs is not None else "")

    def __repr__(self):
        return f"Trial({self.summary()})"


def _fmt(value):
    if isinstance(value, (bool, np.bool_)) or value is None:
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if not math.isfinite(v):
            return str(v)
        if 0.9 < v < 1.0:   # a beta or an accuracy: digits enough to tell 1 - v apart
            return f"{v:.{3 + int(-math.log10(1.0 - v))}f}"
        return f"{v:.4g}"
    if isinstance(value, tuple):
        return "(" + ",".join(_fmt(v) for v in value) + ")"
    return str(value)


def _infer_mode(metric):
    return "max" if any(s in metric for s in ("accuracy", "score", "auc", "f1")) else "min"


class SearchResults:
    """The trials of a search, best first; prints as an aligned table.

    Successful trials are sorted by ``metric`` (``mode`` "max" or "min"), ties by trial
    index; after successive halving, by the rung reached first. Failed trials come last.

    ``best`` (the first successful trial, None if all failed), ``trials``, ``ok``,
    ``failed``, ``len``, iteration and indexing (``results[0]`` is the best),
    ``to_list()`` (a list of flat dicts, e.g. for ``pandas.DataFrame``), ``table()``,
    ``plot(path, param="lr")``. After successive halving also ``rungs`` (one dict per
    rung: rung, epochs, configs, ok) and ``epochs_trained``.
    """

    def __init__(self, trials, metric, mode, space=None, kind="random search", rungs=None,
                 epochs_trained=None):
        self.metric, self.mode, self.space, self.kind = metric, mode, space or {}, kind
        self.rungs, self.epochs_trained = rungs, epochs_trained
        sign = -1.0 if mode == "max" else 1.0

        def key(t):
            rung = -(t.rung or 0)
            if t.ok:
                return (0, rung, sign * t.metrics[metric], t.index)
            return (1, rung, 0.0, t.index)
        self.trials = sorted(trials, key=key)

    @property
    def ok(self):
        return [t for t in self.trials if t.ok]

    @property
    def failed(self):
        return [t for t in self.trials if not t.ok]

    @property
    def best(self):
        return next((t for t in self.trials if t.ok), None)

    def __len__(self):
        return len(self.trials)

    def __iter__(self):
        return iter(self.trials)

    def __getitem__(self, i):
        return self.trials[i]

    def to_list(self):
        """One flat dict per trial, best first, with its ``rank`` (1 = best)."""
        return [{"rank": rank, **t.to_dict()} for rank, t in enumerate(self.trials, 1)]

    def _columns(self):
        params = list(self.space)
        for t in self.trials:
            params += [k for k in t.params if k not in params]
        metrics = [self.metric]
        for t in self.trials:
            metrics += [k for k in t.metrics if k not in metrics]
        if "time" in metrics:
            metrics.remove("time")
            metrics.append("time")
        return params, metrics

    def summary(self):
        n_ok = len(self.ok)
        unit = "configs" if self.rungs is not None else "trials"
        text = (f"{self.kind}: {len(self)} {unit}, {n_ok} ok, {len(self) - n_ok} failed; "
                f"sorted by {self.metric} ({self.mode})")
        if self.rungs:
            text += ("\nrungs: " + ", ".join(f"{r['configs']} x {r['epochs']} epochs"
                                             for r in self.rungs)
                     + f"; {self.epochs_trained} epochs trained")
        return text

    def table(self, max_error=60):
        """The aligned table (the ``str`` of the results)."""
        params, metrics = self._columns()
        sh = self.rungs is not None
        header = ["rank", "trial"] + (["rung", "epochs"] if sh else []) + params + metrics \
            + ["status"]
        rows = []
        for rank, t in enumerate(self.trials, 1):
            row = [str(rank), str(t.index)]
            if sh:
                row += [_fmt(t.rung), _fmt(t.epochs)]
            row += [_fmt(t.params[p]) if p in t.params else "-" for p in params]
            for m in metrics:
                v = t.metrics.get(m)
                if not t.ok or v is None:
                    row.append("-")
                elif m == "time" and isinstance(v, numbers.Real):
                    row.append(f"{v:.2f}s")
                else:
                    row.append(_fmt(v))
            status = t.status if t.ok else f"failed: {t.error}"
            if len(status) > max_error:
                status = status[:max_error - 3] + "..."
            row.append(status)
            rows.append(row)
        widths = [max(len(r[c]) for r in [header] + rows) for c in range(len(header))]
        last = len(header) - 1

        def line(cells):
            out = [c.ljust(w) if k == last else c.rjust(w)
                   for k, (c, w) in enumerate(zip(cells, widths))]
            return "  ".join(out).rstrip()
        return "\n".join([self.summary(), line(header)] + [line(r) for r in rows])

    def __str__(self):
        return self.table()

    __repr__ = __str__

    def plot(self, path, param="lr", metric=None, log=None):
        """Write a PNG of ``metric`` (default: the search's) against ``param`` for the
        successful trials, on a log x axis when the space samples ``param`` on a log
        scale (or ``log=True``); the best trial is starred. Needs matplotlib. Written
        to a temporary file in the same folder and renamed. Returns the path."""
        fig = self._figure(param, metric, log)
        return _save_figure(fig, os.fspath(path))

    def _figure(self, param, metric=None, log=None):
        where = "SearchResults.plot"
        metric = self.metric if metric is None else metric
        try:
            # A bare Figure (no pyplot): no screen, and the user's backend is left alone.
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError('SearchResults.plot needs matplotlib: pip install '
                              '"numba-nn[plot]"') from None
        points = [(t.params[param], t.metrics[metric]) for t in self.ok
                  if param in t.params and isinstance(t.params[param], numbers.Real)
                  and isinstance(t.metrics.get(metric), numbers.Real)]
        if not points:
            raise ValueError(f"{where}: no successful trial has a numeric {param!r} and "
                             f"{metric!r} to plot.")
        if log is None:
            dist = self.space.get(param)
            log = bool(getattr(dist, "log_scale", False))
        fig = Figure(figsize=(6, 4), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        x, y = zip(*points)
        ax.scatter(x, y, s=24, alpha=0.75, label="trials")
        best = self.best
        if best is not None and param in best.params and metric in best.metrics:
            ax.scatter([best.params[param]], [best.metrics[metric]], marker="*", s=160,
                       color="C3", label=f"best (trial {best.index})", zorder=3)
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(param + (" (log scale)" if log else ""))
        ax.set_ylabel(metric)
        n_failed = len(self.failed)
        ax.set_title(f"{self.kind}: {len(points)} trials"
                     + (f" ({n_failed} failed, not shown)" if n_failed else ""))
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        return fig


def _save_figure(fig, path):
    from ._files import atomic_write
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100),
                        suffix=".png")


# -- running trials -----------------------------------------------------------------------

class SerialExecutor(cf.Executor):
    """Runs each submitted call at once, in this process: for debugging, for objectives
    that cannot be pickled (lambdas, closures), and for tiny searches."""

    def submit(self, fn, /, *args, **kwargs):
        future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001  (handed to the caller via the future)
            future.set_exception(exc)
        return future


_WORKER = {"path": None, "objective": None}

_GUARD_ADVICE = ('put the code that starts the search under `if __name__ == "__main__":` '
                 'so that only the main process runs it (worker processes are started with '
                 'spawn, and each one imports the main module)')


def _check_not_importing_main(where):
    """Raise in a worker process that is importing the main module and meets a search:
    the script starts it unguarded, and every worker would start it again."""
    # ``_inheriting`` is what multiprocessing's own check reads; that check fires only
    # later, when the worker starts a process, with advice that does not name the search.
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(f"{where} was called while a worker process was importing the "
                           f"main module, so the script starts a search at import: "
                           f"{_GUARD_ADVICE}.")


def _init_worker(threads, path):
    """Initializer of the local worker processes: cap the threads, note the path of
    the objective's pickle."""
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
        from ._threads import set_num_threads
        import numba
        set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    _WORKER["path"] = path


def _worker_objective():
    if _WORKER["objective"] is None:
        try:
            with open(_WORKER["path"], "rb") as fh:
                _WORKER["objective"] = pickle.load(fh)
        except Exception as exc:  # noqa: BLE001
            raise RuntimeError(f"the worker process could not load the objective "
                               f"({type(exc).__name__}: {exc}); define it in an importable "
                               f"module, or in a script guarded by "
                               f"if __name__ == '__main__'") from None
    return _WORKER["objective"]


@contextlib.contextmanager
def _thread_cap(threads):
    """Numba and BLAS threads capped at ``threads`` for the block, then restored."""
    if threads is None:
        yield
        return
    import numba
    import threadpoolctl
    from . import _threads  # noqa: F401  (loads SciPy's BLAS so threadpoolctl sees it)
    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpoolctl.threadpool_limits(threads, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(previous)


def _clean_metrics(metrics):
    if not isinstance(metrics, dict):
        raise TypeError(f"the objective must return a dict of metrics; got "
                        f"{type(metrics).__name__}")
    out = {}
    for name, value in metrics.items():
        if not isinstance(name, str):
            raise TypeError(f"metric names must be strings; got {name!r}")
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
            value = float(value)
        out[name] = _plain(value)
    return out


def _run_trial(objective, index, params, kwargs, threads):
    """Run one trial (in a worker): never raises, returns a plain dict."""
    start = time.perf_counter()
    result = {"index": index, "status": "ok", "metrics": {}, "error": None}
    try:
        if objective is None:
            objective = _worker_objective()
        with _thread_cap(threads):
            metrics = objective(dict(params), **kwargs)
        result["metrics"] = _clean_metrics(metrics)
    except Exception as exc:  # noqa: BLE001  (a failed trial, recorded, not fatal)
        result["status"] = "failed"
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["metrics"].setdefault("time", time.perf_counter() - start)
    return result


def _make_trial(result, params, seed, metric):
    trial = Trial(index=result["index"], params=params, seed=seed, status=result["status"],
                  metrics=result["metrics"], error=result["error"])
    if trial.ok:
        bad = [k for k, v in trial.metrics.items()
               if isinstance(v, float) and not math.isfinite(v)]
        value = trial.metrics.get(metric)
        if bad:
            trial.status = "failed"
            trial.error = "non-finite metrics: " + ", ".join(
                f"{k}={trial.metrics[k]}" for k in bad)
        elif not isinstance(value, float):
            trial.status = "failed"
            trial.error = (f"the objective returned no numeric {metric!r} (it returned "
                           f"{sorted(trial.metrics)})")
    return trial


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _keywords(objective):
    """The keyword names ``objective`` accepts; "all" with **kwargs; None if unknown."""
    try:
        sig = inspect.signature(objective)
    except (TypeError, ValueError):
        return None
    names = set()
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return "all"
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.add(p.name)
    return names


def _check_picklable(objective, where):
    try:
        return pickle.dumps(objective)
    except Exception as exc:  # noqa: BLE001
        raise TypeError(
            f"{where}: objective must be picklable to run in worker processes (a "
            f"module-level function, or an instance of a module-level class such as "
            f"nn.tuning.mlp_objective(...)); pickling {objective!r} failed "
            f"({type(exc).__name__}: {exc}). To run it in this process, pass "
            f"executor=nn.tuning.SerialExecutor().") from None


class _Runner:
    """Owns the executor of a search (a local spawn pool unless one is given) and runs
    batches of trials on it, reporting each as it finishes."""

    def __init__(self, objective, executor, n_workers, threads, n_tasks, where):
        self.threads, self.where = threads, where
        self.own = executor is None
        if executor is None:
            payload = _check_picklable(objective, where)
            n = min(n_workers or _cpu_count(), max(1, n_tasks))
            # The objective (its data included) goes to the workers in a file: spawn
            # writes the initializer's arguments down a pipe and keeps its own copy of
            # the read end open until the write returns, so if the worker dies before
            # reading them (an unguarded script), a write larger than the pipe's buffer
            # never returns.
            fd, self.payload = tempfile.mkstemp(prefix="nn-search-", suffix=".pickle")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(payload)
                self.executor = cf.ProcessPoolExecutor(
                    max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker, initargs=(threads, self.payload))
            except BaseException:
                os.unlink(self.payload)
                raise
            self.send = None          # the workers load the objective
        else:
            if not isinstance(executor, cf.Executor):
                raise TypeError(f"{where}: executor must be a concurrent.futures.Executor "
                                f"(e.g. a Dask client's client.get_executor()) or None; got "
                                f"{executor!r}.")
            if isinstance(executor, cf.ProcessPoolExecutor):
                _check_picklable(objective, where)
            self.executor = executor
            self.send = objective

    def run(self, tasks, on_done):
        """``tasks``: (index, params, kwargs); returns {index: result dict}."""
        futures = {}
        results = {}

        def collect(fut):
            index = futures[fut]
            try:
                result = fut.result()
            except BrokenProcessPool:
                raise                 # no trial can run any more: the search stops
            except Exception as exc:  # noqa: BLE001  (a task was lost)
                result = {"index": index, "status": "failed", "metrics": {},
                          "error": f"{type(exc).__name__}: {exc}"}
            results[index] = result
            on_done(result, len(results))

        try:
            pending = []
            for index, params, kwargs in tasks:
                # Positional arguments only: Dask's submit takes keywords of its own.
                fut = self.executor.submit(_run_trial, self.send, index, params, kwargs,
                                           self.threads)
                futures[fut] = index
                if fut.done():      # SerialExecutor: report as it goes
                    collect(fut)
                else:
                    pending.append(fut)
            for fut in cf.as_completed(pending):
                collect(fut)
            return results
        except BrokenProcessPool as exc:
            for fut in futures:
                fut.cancel()
            raise RuntimeError(
                f"{self.where}: a worker process exited before it finished a trial "
                f"({str(exc).rstrip('.')}). The usual cause is a script without a main guard: "
                f"{_GUARD_ADVICE}; the worker's own error is printed above. Otherwise "
                f"the objective crashed the worker (a segfault, or out of memory).") from None
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise

    def close(self):
        if self.own:
            self.executor.shutdown(wait=True, cancel_futures=True)
            os.unlink(self.payload)


class _Progress:
    """One line per finished trial on stderr (verbose 2, or 1 without tqdm), or a tqdm
    bar (verbose 1); nothing for verbose 0."""

    def __init__(self, verbose, total, metric, label=""):
        self.verbose, self.total, self.metric, self.label = verbose, total, metric, label
        self.bar = None
        if verbose == 1:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self.verbose = 2
            else:
                self.bar = tqdm(total=total, unit="trial", desc=label or None,
                                file=sys.stderr, dynamic_ncols=True, leave=True)

    def done(self, trial, n_done, best):
        if self.bar is not None:
            if best is not None:
                self.bar.set_postfix({"best " + self.metric: _fmt(best)}, refresh=False)
            self.bar.update(1)
        elif self.verbose:
            prefix = f"{self.label} " if self.label else ""
            print(f"{prefix}[{n_done}/{self.total}] {trial.summary(self.metric)}",
                  file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _check_common(where, metric, mode, n_workers, threads, verbose):
    if not isinstance(metric, str) or not metric:
        raise TypeError(f"{where}: metric must be a metric name such as 'dev_accuracy'; "
                        f"got {metric!r}.")
    mode = _infer_mode(metric) if mode is None else check_choice(
        "mode", mode, ("min", "max"), where=where)
    if n_workers is not None:
        n_workers = check_scalar("n_workers", n_workers, where=where, low=1, integer=True)
    if threads is not None:
        threads = check_scalar("threads", threads, where=where, low=1, integer=True)
    if isinstance(verbose, str):
        check_choice("verbose", verbose, ("auto",), where=where)
        try:
            verbose = 1 if sys.stderr.isatty() else 0
        except (AttributeError, ValueError):
            verbose = 0
    verbose = check_scalar("verbose", verbose, where=where, low=0, high=2, integer=True)
    return mode, n_workers, threads, verbose


def _check_objective(objective, where):
    if not callable(objective):
        raise TypeError(f"{where}: objective must be a callable params -> dict of metrics; "
                        f"got {objective!r}.")


def _better(mode, value, best):
    return best is None or (value > best if mode == "max" else value < best)


def random_search(objective, space, n_trials, executor=None, seed=0, *,
                  metric="dev_accuracy", mode=None, n_workers=None, threads=1,
                  verbose="auto"):
    """Try ``n_trials`` random configurations of ``space``; return a ``SearchResults``.

    Parameters
    ----------
    objective : callable ``objective(params) -> dict of metrics``
        Trains a model with the hyperparameters ``params`` (a dict, one value per name
        of ``space``) and returns its metrics, e.g. ``{"dev_accuracy": ..., "dev_loss":
        ..., "time": ...}`` (``time``, the trial's seconds, is added when missing). If it
        accepts a ``seed`` keyword it gets the trial's seed, for the model and its
        shuffling. An exception (``nn.DivergenceError`` included) or a non-finite metric
        makes a failed trial; the search goes on. To run in worker processes it must be
        picklable: a module-level function or an instance of a module-level class, such
        as ``mlp_objective(X_train, y_train, X_dev, y_dev)``.
    space : dict of name -> Distribution (or a fixed value)
    n_trials : int >= 1
    executor : None or a ``concurrent.futures.Executor``
        None: local worker processes, started with ``spawn``, ``n_workers`` of them
        (default: one per core), each with ``threads`` Numba and BLAS threads. Any
        Executor works: ``SerialExecutor()`` (this process), a
        ``ProcessPoolExecutor``, or a Dask cluster's ``Client(...).get_executor()``.
    seed : int >= 0
        Trial ``i``'s params and seed derive from ``(seed, i)`` alone: the same seed
        gives the same results on any executor, in any order of completion.
    metric : str
        The metric that ranks the trials (default "dev_accuracy").
    mode : "max", "min" or None
        Whether higher or lower is better; None: "max" for accuracies and scores,
        "min" otherwise.
    n_workers : int >= 1 or None
        Local worker processes (with ``executor=None``); default the core count.
    threads : int >= 1 or None
        Numba and BLAS threads of each trial, set in the worker when the trial starts
        (on any executor) and restored after; 1 (default) keeps ``n_workers`` trials
        from oversubscribing the cores, and makes results the same bits on every
        executor. None leaves the thread counts alone.
    verbose : "auto", 0, 1 or 2
        Progress on stderr: 0 none, 1 a tqdm bar (lines without tqdm), 2 one line per
        finished trial; "auto" is 1 when stderr is a terminal, else 0.
    """
    where = "random_search"
    _check_not_importing_main(where)
    _check_objective(objective, where)
    _check_space(space, where)
    n_trials = check_scalar("n_trials", n_trials, where=where, low=1, integer=True)
    seed = _check_seed(seed, where)
    mode, n_workers, threads, verbose = _check_common(where, metric, mode, n_workers,
                                                      threads, verbose)
    if hasattr(objective, "check_space"):
        objective.check_space(space)
    keywords = _keywords(objective)
    pass_seed = keywords == "all" or (keywords is not None and "seed" in keywords)
    draws = [_trial_draws(space, seed, i) for i in range(n_trials)]
    tasks = [(i, params, {"seed": s} if pass_seed else {})
             for i, (params, s) in enumerate(draws)]
    trials = []
    best = [None]
    progress = _Progress(verbose, n_trials, metric)

    def on_done(result, n_done):
        params, s = draws[result["index"]]
        trial = _make_trial(result, params, s, metric)
        trials.append(trial)
        if trial.ok and _better(mode, trial.metrics[metric], best[0]):
            best[0] = trial.metrics[metric]
        progress.done(trial, n_done, best[0])

    runner = _Runner(objective, executor, n_workers, threads, n_trials, where)
    try:
        runner.run(tasks, on_done)
    finally:
        progress.close()
        runner.close()
    return SearchResults(trials, metric, mode, space, kind="random search")


_RESUMABLE = ("seed", "epochs", "initial_epoch", "checkpoint")


def successive_halving(objective, space, n_configs, *, min_epochs=1, max_epochs=None, eta=3,
                       metric="dev_accuracy", mode=None, executor=None, seed=0,
                       workdir=None, n_workers=None, threads=1, verbose="auto"):
    """Successive halving: train many configurations briefly, continue the best.

    Rung ``r`` trains its configurations to ``min_epochs * eta**r`` epochs (capped at
    ``max_epochs``), resuming each from the checkpoint it left at the previous rung,
    then keeps the best ``1/eta`` of them (at least one) for the next rung. The search
    ends after the rung that reaches ``max_epochs``. Most of the time goes to the
    promising configurations: 27 configurations with ``eta=3`` from 1 to 27 epochs cost
    27 + 2*9 + 6*3 + 18*1 = 81 epochs, against 729 to train all 27 for 27 epochs.

    Parameters
    ----------
    objective : callable ``objective(params, *, seed, epochs, initial_epoch, checkpoint)``
        Trains the configuration ``params`` until ``epochs`` epochs: from scratch when
        ``initial_epoch`` is 0, else resumed from the model file ``checkpoint`` (with
        ``nn.load`` and ``fit(..., initial_epoch=initial_epoch)``); saves the model to
        ``checkpoint`` (``nn.save``) and returns its metrics. ``mlp_objective(...)``
        does this. Picklable for worker processes, as for ``random_search``.
    space, seed, metric, mode, executor, n_workers, threads, verbose
        As for ``random_search``: configuration ``i`` is the ``i``-th one
        ``random_search`` would try with the same ``space`` and ``seed``.
    n_configs : int >= 1
        Configurations at the first rung.
    min_epochs : int >= 1
        The first rung's budget.
    max_epochs : int >= min_epochs or None
        The last rung's budget; default ``min_epochs * eta**k`` with the largest ``k``
        such that ``n_configs // eta**k >= 1`` (about one configuration at the end).
    eta : int >= 2
        Budget growth and the inverse of the fraction kept per rung.
    workdir : folder or None
        Where the checkpoints go (``trial-0007.safetensors`` for trial 7), kept after the search
        (``Trial.checkpoint``); None uses a temporary folder, removed at the end. With a
        cluster's executor it must be a folder all workers share.

    Returns
    -------
    SearchResults
        Every configuration with the metrics of the last rung it reached (``rung``,
        ``epochs``), sorted by rung reached and then ``metric``: ``best`` is the best
        configuration of the last rung. ``rungs`` and ``epochs_trained`` (epochs
        scheduled, over all configurations) tell where the time went.
    """
    where = "successive_halving"
    _check_not_importing_main(where)
    _check_objective(objective, where)
    _check_space(space, where)
    n_configs = check_scalar("n_configs", n_configs, where=where, low=1, integer=True)
    min_epochs = check_scalar("min_epochs", min_epochs, where=where, low=1, integer=True)
    eta = check_scalar("eta", eta, where=where, low=2, integer=True)
    if max_epochs is None:
        k = 0
        while n_configs // eta ** (k + 1) >= 1:
            k += 1
        max_epochs = min_epochs * eta ** k
    max_epochs = check_scalar("max_epochs", max_epochs, where=where, low=min_epochs,
                              integer=True)
    seed = _check_seed(seed, where)
    mode, n_workers, threads, verbose = _check_common(where, metric, mode, n_workers,
                                                      threads, verbose)
    keywords = _keywords(objective)
    if keywords is not None and keywords != "all":
        missing = [k for k in _RESUMABLE if k not in keywords]
        if missing:
            raise TypeError(f"{where}: objective must accept the keywords "
                            f"{', '.join(_RESUMABLE)} (train to `epochs`, resuming from "
                            f"`checkpoint` when initial_epoch > 0, and save there); "
                            f"{objective!r} lacks {', '.join(missing)}. "
                            f"nn.tuning.mlp_objective(...) makes one.")
    if hasattr(objective, "check_space"):
        objective.check_space(space)
    temp = None
    if workdir is None:
        temp = tempfile.TemporaryDirectory(prefix="nn-halving-")
        folder = temp.name
    else:
        if not isinstance(workdir, (str, bytes, os.PathLike)):
            raise TypeError(f"{where}: workdir must be a folder path or None; got "
                            f"{workdir!r}.")
        folder = os.path.abspath(os.fsdecode(workdir))
        os.makedirs(folder, exist_ok=True)
    draws = [_trial_draws(space, seed, i) for i in range(n_configs)]
    paths = [os.path.join(folder, f"trial-{i:04d}.safetensors") for i in range(n_configs)]
    latest = {}
    rungs = []
    epochs_trained = 0
    runner = _Runner(objective, executor, n_workers, threads, n_configs, where)
    try:
        alive, previous, rung = list(range(n_configs)), 0, 0
        while alive:
            budget = min(min_epochs * eta ** rung, max_epochs)
            tasks = [(i, draws[i][0], {"seed": draws[i][1], "epochs": budget,
                                       "initial_epoch": previous, "checkpoint": paths[i]})
                     for i in alive]
            label = f"rung {rung} ({budget} epoch{'s' if budget > 1 else ''})"
            progress = _Progress(verbose, len(tasks), metric, label)
            best = [None]

            def on_done(result, n_done, rung=rung, budget=budget, progress=progress,
                        best=best):
                params, s = draws[result["index"]]
                trial = _make_trial(result, params, s, metric)
                trial.rung, trial.epochs = rung, budget
                before = latest[trial.index].history if trial.index in latest else []
                trial.history = before + [(budget, dict(trial.metrics))]
                if workdir is not None:
                    trial.checkpoint = paths[trial.index]
                latest[trial.index] = trial
                if trial.ok and _better(mode, trial.metrics[metric], best[0]):
                    best[0] = trial.metrics[metric]
                progress.done(trial, n_done, best[0])

            try:
                runner.run(tasks, on_done)
            finally:
                progress.close()
            epochs_trained += (budget - previous) * len(alive)
            ranked = SearchResults([latest[i] for i in alive], metric, mode).ok
            rungs.append({"rung": rung, "epochs": budget, "configs": len(alive),
                          "ok": len(ranked)})
            if budget >= max_epochs:
                break
            alive = [t.index for t in ranked[:max(1, len(alive) // eta)]]
            previous, rung = budget, rung + 1
    finally:
        runner.close()
        if temp is not None:
            temp.cleanup()
    return SearchResults(list(latest.values()), metric, mode, space,
                         kind="successive halving", rungs=rungs,
                         epochs_trained=epochs_trained)


# -- a ready-made objective: an MLP on given data -------------------------------------------

_OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")


class MLPObjective:
    """A picklable objective that trains a fully connected network on fixed data.

    Made by ``mlp_objective``; see there. ``objective(params, seed=0, epochs=None,
    initial_epoch=0, checkpoint=None)`` returns ``{"dev_accuracy", "dev_loss",
    "train_accuracy", "train_loss", "time"}`` (accuracies for classification losses).
    """

    PARAMS = ("lr", "hidden", "layers", "activation", "optimizer", "beta", "beta1", "beta2",
              "l2", "l1", "batch_size", "keep_prob", "epochs")

    def __init__(self, X_train, y_train, X_dev, y_dev, defaults, loss=None, standardize=True,
                 dtype=np.float32):
        from .data import Standardizer
        from .losses import SoftmaxCrossEntropy, check_loss
        where = "mlp_objective"
        self.dtype = check_dtype(dtype, where)
        self.X_train = check_array("X_train", X_train, where=where, dtype=self.dtype)
        self.X_dev = check_array("X_dev", X_dev, where=where, dtype=self.dtype,
                                 n_cols=self.X_train.shape[1])
        self.y_train, self.y_dev = np.asarray(y_train), np.asarray(y_dev)
        for name, X, y in (("y_train", self.X_train, self.y_train),
                           ("y_dev", self.X_dev, self.y_dev)):
            if y.ndim == 0 or y.shape[0] != X.shape[0]:
                raise ValueError(f"{where}: {name} must have one row per row of "
                                 f"X_{name[2:]} ({X.shape[0]}); got shape {y.shape}.")
        self.loss = check_loss(SoftmaxCrossEntropy() if loss is None else loss, where)
        if isinstance(self.loss, SoftmaxCrossEntropy) and self.y_train.ndim == 1:
            if not np.issubdtype(self.y_train.dtype, np.number) or self.y_train.size == 0:
                raise TypeError(f"{where}: y_train must hold integer class labels; got dtype "
                                f"{self.y_train.dtype}.")
            self.n_outputs = int(max(self.y_train.max(), self.y_dev.max())) + 1
        else:
            self.n_outputs = self.y_train.shape[1] if self.y_train.ndim == 2 else 1
        # Fail now, not in every trial, on bad data (labels out of range, NaN...).
        self.loss.targets(self.y_train, self.n_outputs, len(self.y_train), self.dtype,
                          where + " (y_train)")
        self.loss.targets(self.y_dev, self.n_outputs, len(self.y_dev), self.dtype,
                          where + " (y_dev)")
        self.standardizer = Standardizer().fit(self.X_train) if check_bool(
            "standardize", standardize, where=where) else None
        self.defaults = dict(defaults)
        self.check_space(self.defaults)
        self._resolve({}, where)   # validates the defaults

    def check_space(self, space):
        """Raise if ``space`` names a hyperparameter this objective does not know."""
        unknown = [k for k in space if k not in self.PARAMS]
        if unknown:
            raise ValueError(f"mlp_objective: unknown hyperparameter(s) "
                             f"{', '.join(map(repr, unknown))}; known: "
                             f"{', '.join(self.PARAMS)}.")

    def _resolve(self, params, where):
        import kernels
        self.check_space(params)
        p = {**self.defaults, **params}
        out = {"lr": check_scalar("lr", p["lr"], where=where, low=0.0, low_open=True)}
        hidden = p["hidden"]
        if isinstance(hidden, (tuple, list)):
            widths = [check_scalar(f"hidden[{i}]", h, where=where, low=1, integer=True)
                      for i, h in enumerate(hidden)]
        else:
            width = check_scalar("hidden", hidden, where=where, low=1, integer=True)
            layers = check_scalar("layers", p["layers"], where=where, low=1, integer=True)
            widths = [width] * layers
        out["widths"] = widths
        out["activation"] = check_choice("activation", p["activation"],
                                         [a for a in kernels.ACTIVATION_CODES
                                          if a != "identity"], where=where)
        out["optimizer"] = check_choice("optimizer", p["optimizer"], _OPTIMIZERS, where=where)
        for name in ("beta", "beta1", "beta2"):
            out[name] = check_scalar(name, p[name], where=where, low=0.0, high=1.0,
                                     high_open=True)
        for name in ("l2", "l1"):
            out[name] = check_scalar(name, p[name], where=where, low=0.0)
        out["batch_size"] = check_scalar("batch_size", p["batch_size"], where=where, low=1,
                                         integer=True)
        out["keep_prob"] = check_scalar("keep_prob", p["keep_prob"], where=where, low=0.0,
                                        high=1.0, low_open=True)
        out["epochs"] = check_scalar("epochs", p["epochs"], where=where, low=1, integer=True)
        return out

    def build(self, params, seed=0):
        """The untrained model and optimizer for ``params`` (a dict of overrides)."""
        from . import optimizers
        from .layers import Dense, Dropout
        from .model import Sequential
        p = self._resolve(params, "MLPObjective.build")
        init = "he" if "relu" in p["activation"] else "xavier"
        widths = [self.X_train.shape[1]] + p["widths"]
        layers = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers.append(Dense(a, b, activation=p["activation"], init=init))
            if p["keep_prob"] < 1.0:
                layers.append(Dropout(p["keep_prob"]))
        layers.append(Dense(widths[-1], self.n_outputs))
        model = Sequential(layers, dtype=self.dtype, seed=seed)
        model.standardizer = self.standardizer
        opt = {"sgd": lambda: optimizers.SGD(p["lr"]),
               "momentum": lambda: optimizers.Momentum(p["lr"], beta=p["beta"]),
               "rmsprop": lambda: optimizers.RMSprop(p["lr"], beta=p["beta"]),
               "adam": lambda: optimizers.Adam(p["lr"], beta1=p["beta1"], beta2=p["beta2"]),
               }[p["optimizer"]]()
        return model, opt

    def __call__(self, params, seed=0, epochs=None, initial_epoch=0, checkpoint=None):
        from .io import load, save
        from .training import fit
        where = "MLPObjective"
        start = time.perf_counter()
        p = self._resolve(params, where)
        seed = check_scalar("seed", seed, where=where, low=0, integer=True)
        epochs = p["epochs"] if epochs is None else check_scalar(
            "epochs", epochs, where=where, low=1, integer=True)
        initial_epoch = check_scalar("initial_epoch", initial_epoch, where=where, low=0,
                                     integer=True)
        if initial_epoch > 0:
            if checkpoint is None:
                raise ValueError(f"{where}: initial_epoch={initial_epoch} resumes from a "
                                 f"checkpoint; pass checkpoint=PATH.")
            model = load(checkpoint)
            optimizer = model.optimizer
        else:
            model, optimizer = self.build(params, seed)
        history = fit(model, self.X_train, self.y_train, loss=self.loss, optimizer=optimizer,
                      epochs=epochs, initial_epoch=initial_epoch,
                      batch_size=p["batch_size"], l2=p["l2"], l1=p["l1"], seed=seed,
                      validation_data=(self.X_dev, self.y_dev), verbose=0)
        if checkpoint is not None:
            save(model, checkpoint)
        last = history.last()
        metrics = {}
        for key in ("dev_accuracy", "dev_loss", "accuracy", "loss"):
            if key in last:
                metrics[key if key.startswith("dev_") else "train_" + key] = last[key]
        metrics["time"] = time.perf_counter() - start
        return metrics

    def __repr__(self):
        return (f"MLPObjective({self.X_train.shape[0]} train, {self.X_dev.shape[0]} dev rows, "
                f"{self.X_train.shape[1]} features, {self.n_outputs} outputs)")


def mlp_objective(X_train, y_train, X_dev, y_dev, *, epochs=10, lr=1e-3, hidden=64, layers=1,
                  activation="relu", optimizer="adam", beta=0.9, beta1=0.9, beta2=0.999,
                  l2=0.0, l1=0.0, batch_size=32, keep_prob=1.0, loss=None, standardize=True,
                  dtype=np.float32):
    """An objective for ``random_search`` and ``successive_halving``: train an MLP.

    ``objective(params, seed=0, epochs=None, initial_epoch=0, checkpoint=None)`` builds
    ``n_features -> hidden x layers -> n_outputs`` (Dense layers with ``activation``,
    He or Xavier initialization, a Dropout after each hidden layer when ``keep_prob <
    1``), fits it on the training data with the model's ``standardizer`` fitted on
    ``X_train`` (``standardize=True``), evaluates on the dev data after each epoch and
    returns ``{"dev_accuracy", "dev_loss", "train_accuracy", "train_loss", "time"}``.
    The keyword arguments are the defaults; ``params`` overrides any of them: ``lr``,
    ``hidden`` (an int, or a tuple of widths), ``layers``, ``activation``, ``optimizer``
    ("sgd", "momentum", "rmsprop", "adam"), ``beta`` (momentum's and RMSprop's),
    ``beta1``, ``beta2`` (Adam's), ``l2``, ``l1``, ``batch_size``, ``keep_prob``,
    ``epochs``. The trial's ``seed`` seeds the initialization and the shuffling; with
    ``checkpoint`` the trained model is saved there (``nn.save``), and with
    ``initial_epoch > 0`` training resumes from it: the same bits as training straight.

    The returned object is picklable (it carries the data), so the search can run it in
    worker processes. ``loss`` defaults to ``nn.SoftmaxCrossEntropy()`` with integer
    labels; ``nn.BinaryCrossEntropy()`` and ``nn.MeanSquaredError()`` work too (rank by
    ``metric="dev_loss"`` when there is no accuracy).
    """
    defaults = dict(epochs=epochs, lr=lr, hidden=hidden, layers=layers, activation=activation,
                    optimizer=optimizer, beta=beta, beta1=beta1, beta2=beta2, l2=l2, l1=l1,
                    batch_size=batch_size, keep_prob=keep_prob)
    return MLPObjective(X_train, y_train, X_dev, y_dev, defaults, loss=loss,
                        standardize=standardize, dtype=dtype)


# -- babysitting one model ----------------------------------------------------------------

class Babysitter(Callback):
    """Steer a running ``fit``: change its learning rate, checkpoint it, stop it.

    Commands come from another thread (``set_lr``, ``save_checkpoint``, ``stop``) or
    from a small JSON control file polled after every epoch, e.g. ``{"lr": 0.003}``,
    ``{"checkpoint": true}``, ``{"checkpoint": "run-{epoch}.safetensors", "stop": true}``. The
    file is acted on each time it changes (written anew); what it holds when training
    starts is ignored, so a stale command does not fire. Commands take effect at the
    end of the current epoch, in this order: the learning rate (the next epoch uses
    it), the checkpoint (``nn.save``: the saved optimizer carries the new rate), then
    the stop. A ``fit(schedule=...)`` sets the rate every epoch, over the babysitter's.

    Resume from any checkpoint: ``model = nn.load(path)`` and ``model.fit(X, y,
    epochs=total, initial_epoch=epoch_saved, seed=same)``; it continues exactly.

    Parameters
    ----------
    control : path or None
        The JSON control file (need not exist yet). A file that is not valid JSON, or
        holds bad values, is skipped with a warning: training goes on.
    checkpoint : path or None
        Where ``{"checkpoint": true}`` and ``save_checkpoint()`` save; may hold
        ``{epoch}`` (the epochs done).

    Attributes
    ----------
    epoch : epochs done so far (None before the first); ``logs``: that epoch's metrics
    lr_changes : list of (epoch, old lr, new lr), epoch being the epochs done then (a
        command repeating the current rate is not a change)
    saved : list of (epoch, path) of each checkpoint
    """

    def __init__(self, control=None, checkpoint=None):
        where = "Babysitter"
        for name, value in (("control", control), ("checkpoint", checkpoint)):
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise TypeError(f"{where}: {name} must be a path or None; got {value!r}.")
        self.control = None if control is None else os.fspath(control)
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self._lock = threading.Condition()
        self._pending = {}
        self._seen = None
        self._running = False
        self.epoch = None
        self.logs = None
        self.lr_changes = []
        self.saved = []

    # commands from other threads
    def set_lr(self, lr):
        """Use learning rate ``lr`` (> 0) from the next epoch on."""
        lr = check_scalar("lr", lr, where="Babysitter.set_lr", low=0.0, low_open=True)
        with self._lock:
            self._pending["lr"] = lr

    def save_checkpoint(self, path=None):
        """Save the model at the end of the current epoch, to ``path`` (default: the
        ``checkpoint`` given to the constructor)."""
        if path is None and self.checkpoint is None:
            raise ValueError("Babysitter.save_checkpoint: no path; pass path= or create "
                             "the Babysitter with checkpoint=PATH.")
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"Babysitter.save_checkpoint: path must be a path or None; got "
                            f"{path!r}.")
        with self._lock:
            self._pending["checkpoint"] = True if path is None else os.fspath(path)

    def stop(self, checkpoint=False):
        """Stop training at the end of the current epoch; with ``checkpoint`` (True for
        the default path, or a path) save the model at that same epoch first."""
        if checkpoint is not False and checkpoint is not None:
            if checkpoint is True and self.checkpoint is None:
                raise ValueError("Babysitter.stop: checkpoint=True needs a path; pass "
                                 "checkpoint=PATH or create the Babysitter with one.")
            if checkpoint is not True and not isinstance(checkpoint, (str, os.PathLike)):
                raise TypeError(f"Babysitter.stop: checkpoint must be True, False or a "
                                f"path; got {checkpoint!r}.")
        with self._lock:
            self._pending["stop"] = True
            if checkpoint is True:
                self._pending["checkpoint"] = True
            elif checkpoint:
                self._pending["checkpoint"] = os.fspath(checkpoint)

    def start(self, model, X, y, **fit_kwargs):
        """Run ``model.fit(X, y, **fit_kwargs)`` in a background thread, with this
        babysitter among its callbacks, and return at once; ``join()`` waits for it."""
        if getattr(self, "_thread", None) is not None and self._thread.is_alive():
            raise RuntimeError("Babysitter.start: a fit is already running; join() it first.")
        callbacks = list(fit_kwargs.pop("callbacks", ()) or ())
        if self not in callbacks:
            callbacks.append(self)
        self._outcome = {}
        with self._lock:
            self._running = True
            self.epoch = self.logs = None

        def target():
            try:
                self._outcome["history"] = model.fit(X, y, callbacks=callbacks, **fit_kwargs)
            except BaseException as exc:  # noqa: BLE001  (re-raised by join)
                self._outcome["error"] = exc
            finally:
                with self._lock:
                    self._running = False
                    self._lock.notify_all()
        self._thread = threading.Thread(target=target, name="nn-babysitter-fit", daemon=True)
        self._thread.start()
        return self._thread

    def join(self, timeout=None):
        """Wait for the fit started by ``start``; return its ``History`` (re-raise its
        exception, e.g. ``nn.DivergenceError``). Raises TimeoutError after ``timeout``
        seconds."""
        thread = getattr(self, "_thread", None)
        if thread is None:
            raise RuntimeError("Babysitter.join: no fit was started; call start() first.")
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"Babysitter.join: the fit still runs after {timeout} s.")
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome["history"]

    def wait(self, epoch, timeout=None):
        """Block until ``epoch`` epochs are done (True) or training ended or ``timeout``
        seconds passed (False): lets a watching thread react epoch by epoch."""
        with self._lock:
            self._lock.wait_for(lambda: (self.epoch or 0) >= epoch or not self._running,
                                timeout)
            return (self.epoch or 0) >= epoch

    # the callback
    def _stat(self):
        try:
            st = os.stat(self.control)
            with open(self.control, "rb") as fh:
                return (st.st_mtime_ns, fh.read())
        except OSError:
            return None

    def on_train_begin(self, model, history):
        with self._lock:
            self._running = True
            if self.control is not None:
                self._seen = self._stat()

    def _read_control(self):
        state = self._stat()
        if state is None or state == self._seen:
            return {}
        self._seen = state
        where = f"Babysitter: control file {self.control!r}"
        try:
            commands = json.loads(state[1].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            warnings.warn(f"{where} is not valid JSON ({exc}); ignored.", stacklevel=3)
            return {}
        if not isinstance(commands, dict):
            warnings.warn(f"{where} must hold a JSON object; ignored.", stacklevel=3)
            return {}
        out = {}
        for key, value in commands.items():
            if key == "lr":
                if (isinstance(value, bool) or not isinstance(value, (int, float))
                        or not math.isfinite(value) or value <= 0):
                    warnings.warn(f"{where}: lr must be a number > 0; got {value!r}; "
                                  f"ignored.", stacklevel=3)
                    continue
                out["lr"] = float(value)
            elif key == "checkpoint":
                if value is False or value is None:
                    continue
                if value is True and self.checkpoint is None:
                    warnings.warn(f"{where}: checkpoint is true but the Babysitter has no "
                                  f"checkpoint path; ignored.", stacklevel=3)
                    continue
                if value is not True and (not isinstance(value, str) or not value):
                    warnings.warn(f"{where}: checkpoint must be true or a path; got "
                                  f"{value!r}; ignored.", stacklevel=3)
                    continue
                out["checkpoint"] = value
            elif key == "stop":
                if value is True:
                    out["stop"] = True
                elif value is not False:
                    warnings.warn(f"{where}: stop must be true or false; got {value!r}; "
                                  f"ignored.", stacklevel=3)
            else:
                warnings.warn(f"{where}: unknown command {key!r} (known: lr, checkpoint, "
                              f"stop); ignored.", stacklevel=3)
        return out

    def on_epoch_end(self, model, epoch, logs, history):
        from .io import save
        done = epoch   # counted from 1: the epochs done
        with self._lock:
            commands = self._read_control() if self.control is not None else {}
            commands.update(self._pending)
            self._pending = {}
        if ("lr" in commands and model.optimizer is not None
                and commands["lr"] != model.optimizer.lr):
            old = model.optimizer.lr
            model.optimizer.lr = commands["lr"]
            self.lr_changes.append((done, old, model.optimizer.lr))
        if "checkpoint" in commands:
            path = self.checkpoint if commands["checkpoint"] is True else commands["checkpoint"]
            path = _epoch_path(path, done)
            save(model, path)
            self.saved.append((done, path))
        if commands.get("stop"):
            model.stop_training = True
            history.stop_reason = f"stopped by the Babysitter after epoch {done}"
        with self._lock:
            self.epoch, self.logs = done, dict(logs)
            self._lock.notify_all()

    def on_train_end(self, model, history):
        with self._lock:
            self._running = False
            self._lock.notify_all()
