"""The outcome of a search: each configuration's ``Trial``, and ``SearchResults``, the
trials best first, as an aligned table, a list of dicts or a plot."""
import math
import numbers
import os
from dataclasses import dataclass, field

import numpy as np


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
    from .._files import atomic_write
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100),
                        suffix=".png")
