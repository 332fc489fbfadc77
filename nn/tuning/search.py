"""The searches: ``random_search`` tries random configurations of a space, many at
once; ``successive_halving`` trains many briefly and resumes the best from their
checkpoints with more epochs. Both rank the trials by one metric and report each as it
finishes.
"""
import inspect
import math
import os
import tempfile

from .._progress import Progress, resolve_verbose
from .._validation import check_choice, check_scalar
from .executors import _Runner, _check_not_importing_main
from .results import SearchResults, Trial, _fmt
from .spaces import _check_seed, _check_space, _trial_draws


def _infer_mode(metric):
    return "max" if any(s in metric for s in ("accuracy", "score", "auc", "f1")) else "min"


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
    verbose = resolve_verbose(verbose, where)
    return mode, n_workers, threads, verbose


def _check_objective(objective, where):
    if not callable(objective):
        raise TypeError(f"{where}: objective must be a callable params -> dict of metrics; "
                        f"got {objective!r}.")


def _better(mode, value, best):
    return best is None or (value > best if mode == "max" else value < best)


def _report(progress, trial, n_done, total, metric, best, label=None):
    """A finished trial: the best ``metric`` so far on a bar, or the trial's line."""
    prefix = f"{label} " if label else ""
    progress.update(f"{prefix}[{n_done}/{total}] {trial.summary(metric)}",
                    None if best is None else {"best " + metric: _fmt(best)})


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
    progress = Progress(verbose, n_trials, "trial")

    def on_done(result, n_done):
        params, s = draws[result["index"]]
        trial = _make_trial(result, params, s, metric)
        trials.append(trial)
        if trial.ok and _better(mode, trial.metrics[metric], best[0]):
            best[0] = trial.metrics[metric]
        _report(progress, trial, n_done, n_trials, metric, best[0])

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
            progress = Progress(verbose, len(tasks), "trial", desc=label)
            best = [None]

            def on_done(result, n_done, rung=rung, budget=budget, progress=progress,
                        best=best, total=len(tasks), label=label):
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
                _report(progress, trial, n_done, total, metric, best[0], label)

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
