"""``nn.tuning``: search spaces that sample on the right scale, random search on local
workers, any executor and a Dask cluster, successive halving from checkpoints, the
babysitting callback, and ``python -m nn tune``."""
import json
import math
import os
import pathlib
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import stats

import nn
import nn.tuning as tuning
from nn.tuning import (Babysitter, Choice, IntRange, LogUniform, OneMinusLogUniform,
                       SerialExecutor, Uniform)

N_DRAWS = 20_000
P_MIN = 1e-3     # seeded draws: a fixed p-value each run, far above this


# -- helpers ------------------------------------------------------------------------------

def small_digits(seed=0, n=600):
    """A 400/200 train/dev split of the first 600 embedded digits."""
    d = nn.datasets.load_digits()
    return nn.data.split(d.X[:n], d.y[:n], ratios=(2 / 3, 1 / 3), stratify=True, seed=seed)


@pytest.fixture(scope="module")
def digits():
    return small_digits()


@pytest.fixture(scope="module")
def objective(digits):
    (Xtr, ytr), (Xdev, ydev) = digits
    return tuning.mlp_objective(Xtr, ytr, Xdev, ydev, epochs=2, hidden=16, batch_size=64)


#: A space whose last trials include a learning rate for plain SGD that diverges.
SPACE = {"lr": LogUniform(1e-3, 1e3), "hidden": IntRange(8, 32, log=True),
         "optimizer": Choice(["sgd", "adam"]), "beta1": OneMinusLogUniform(0.8, 0.99)}


def without_time(results):
    return [{k: v for k, v in row.items() if k != "time"} for row in results.to_list()]


def quadratic(params, seed=0):
    """A cheap objective: best at x = 0.3; its seed shows in the metrics."""
    x = params["x"]
    return {"score": -(x - 0.3) ** 2, "seed_seen": seed, "time": 0.0}


def quadratic_no_seed(params):
    return {"score": -(params["x"] - 0.3) ** 2}


def troublesome(params):
    """Fails in every way the search must survive, by params["kind"]."""
    kind = params["kind"]
    if kind == "raise":
        raise RuntimeError("boom")
    if kind == "diverge":
        raise nn.DivergenceError("the cost became nan")
    if kind == "nan":
        return {"score": float("nan")}
    if kind == "inf_other":
        return {"score": 1.0, "dev_loss": float("inf")}
    if kind == "not_a_dict":
        return 0.5
    if kind == "no_metric":
        return {"other": 1.0}
    return {"score": params["x"]}


def thread_counts(params):
    """Reports the thread counts a trial runs with (in a worker process)."""
    counts = nn.get_num_threads()
    return {"score": 0.0, "numba": counts["numba"], "blas": counts["blas"]}


# -- search spaces ------------------------------------------------------------------------

def test_log_uniform_puts_as_many_samples_in_each_decade():
    x = LogUniform(1e-4, 1).sample(0, size=N_DRAWS)
    assert x.min() >= 1e-4 and x.max() <= 1
    counts = np.histogram(np.log10(x), bins=[-4, -3, -2, -1, 0])[0]
    assert counts.sum() == N_DRAWS
    assert stats.chisquare(counts).pvalue > P_MIN, counts
    assert stats.kstest(np.log10(x), stats.uniform(-4, 4).cdf).pvalue > P_MIN
    # Uniform sampling on the same range puts ~90% in the last decade.
    y = Uniform(1e-4, 1).sample(0, size=N_DRAWS)
    assert np.mean(y >= 0.1) > 0.89


def test_one_minus_log_uniform_is_even_on_the_scale_of_one_over_one_minus_beta():
    beta = OneMinusLogUniform(0.9, 0.999).sample(1, size=N_DRAWS)
    assert beta.min() >= 0.9 and beta.max() <= 0.999
    counts = np.array([np.sum(beta < 0.99), np.sum(beta >= 0.99)])
    assert stats.chisquare(counts).pvalue > P_MIN, counts
    assert stats.kstest(np.log10(1 - beta), stats.uniform(-3, 2).cdf).pvalue > P_MIN
    # Uniform on [0.9, 0.999] puts ~91% of the betas below 0.99.
    assert np.mean(Uniform(0.9, 0.999).sample(1, size=N_DRAWS) < 0.99) > 0.9


def test_uniform_is_uniform():
    x = Uniform(-2.0, 3.0).sample(2, size=N_DRAWS)
    assert x.min() >= -2 and x.max() < 3
    assert stats.kstest(x, stats.uniform(-2, 5).cdf).pvalue > P_MIN


def test_int_range_gives_each_integer_equally_often():
    x = IntRange(3, 12).sample(3, size=N_DRAWS)
    assert x.dtype.kind == "i"
    counts = np.bincount(x - 3, minlength=10)
    assert counts.shape == (10,) and counts.min() > 0   # both ends included
    assert stats.chisquare(counts).pvalue > P_MIN, counts


def test_int_range_log_follows_the_discrete_log_uniform_law():
    low, high = 16, 512
    x = IntRange(low, high, log=True).sample(4, size=N_DRAWS)
    assert x.min() >= low and x.max() <= high
    k = np.arange(low, high + 1)
    expected = np.log((k + 1) / k) / np.log((high + 1) / low)
    np.testing.assert_allclose(expected.sum(), 1.0)
    # per-octave counts: as many widths in 16..31 as in 256..511
    edges = [16, 32, 64, 128, 256, 513]
    counts = np.histogram(x, bins=edges)[0]
    probs = [expected[(k >= a) & (k < b)].sum() for a, b in zip(edges[:-1], edges[1:])]
    assert stats.chisquare(counts, N_DRAWS * np.array(probs)).pvalue > P_MIN, counts
    assert abs(counts[0] - counts[4]) < 0.1 * counts[0]


def test_choice_picks_each_option_equally_often():
    options = [16, 32, "adam", (1, 2)]
    picks = Choice(options).sample(5, size=N_DRAWS)
    counts = [sum(1 for p in picks if p == o) for o in options]
    assert sum(counts) == N_DRAWS
    assert stats.chisquare(counts).pvalue > P_MIN, counts


@pytest.mark.parametrize("dist", [Uniform(0, 1), LogUniform(1e-3, 10),
                                  OneMinusLogUniform(0.5, 0.9999), IntRange(1, 100),
                                  IntRange(1, 100, log=True), Choice(["a", "b", 3])])
def test_sampling_is_reproducible_from_a_seed(dist):
    a = dist.sample(7, size=50)
    b = dist.sample(np.random.default_rng(7), size=50)
    c = dist.sample(8, size=50)
    assert list(a) == list(b)
    assert list(a) != list(c)
    one = dist.sample(7)
    assert one == a[0]
    assert type(one) in (float, int, str)     # Python scalars: tables and JSON stay clean
    assert eval(repr(dist), vars(tuning)) == dist


@pytest.mark.parametrize("make, error, words", [
    (lambda: LogUniform(0, 1), ValueError, "LogUniform: a must be > 0.0; got 0.0"),
    (lambda: Uniform(2, 1), ValueError, "Uniform: a must be < b; got a=2.0, b=1.0"),
    (lambda: Uniform(0, float("nan")), ValueError, "b must be finite"),
    (lambda: OneMinusLogUniform(0.9, 1.0), ValueError, "b must be < 1.0; got 1.0"),
    (lambda: IntRange(5, 3), ValueError, "high must be >= low (5); got 3"),
    (lambda: IntRange(0, 10, log=True), ValueError, "low must be >= 1; got 0"),
    (lambda: IntRange(1.5, 3), TypeError, "low must be an integer; got 1.5"),
    (lambda: Choice([]), ValueError, "options is empty"),
    (lambda: Choice("abc"), TypeError, "options must be a list"),
    (lambda: Choice([[1, 2]]), TypeError, "options[0] must be"),
    (lambda: LogUniform(1e-3, 1).sample("x"), TypeError, "rng must be"),
    (lambda: LogUniform(1e-3, 1).sample(0, size=-1), ValueError, "size must be >= 0"),
])
def test_distributions_validate_their_arguments(make, error, words):
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)


def test_configs_depend_only_on_the_seed_and_the_trial_index():
    space = {"lr": LogUniform(1e-4, 1), "width": IntRange(8, 64), "act": "relu"}
    five = tuning.sample_configs(space, 5, seed=3)
    assert tuning.sample_configs(space, 3, seed=3) == five[:3]
    assert tuning.sample_configs(space, 5, seed=4) != five
    assert all(c["act"] == "relu" for c in five)        # a fixed value passes through
    assert len({c["lr"] for c in five}) == 5
    # appending a hyperparameter leaves the earlier ones as they were
    more = tuning.sample_configs({**space, "l2": Uniform(0, 1)}, 5, seed=3)
    assert [{k: c[k] for k in space} for c in more] == five


@pytest.mark.parametrize("space, error, words", [
    ({}, ValueError, "space is empty"),
    ([("lr", LogUniform(1e-3, 1))], TypeError, "space must be a dict"),
    ({"batch": [32, 64]}, TypeError, "use Choice([32, 64])"),
    ({"lr": object()}, TypeError, "space['lr'] must be a Distribution"),
    ({"": 1.0}, TypeError, "non-empty strings"),
])
def test_bad_spaces_are_rejected(space, error, words):
    with pytest.raises(error) as info:
        tuning.random_search(quadratic, space, 2, executor=SerialExecutor(), verbose=0)
    assert words in str(info.value)


# -- random search: ranking, failures, the table ----------------------------------------

def test_random_search_ranks_the_trials_and_prints_a_table():
    space = {"x": Uniform(0, 1), "name": Choice(["a", "b"])}
    results = tuning.random_search(quadratic, space, 12, executor=SerialExecutor(), seed=5,
                                   metric="score", verbose=0)
    assert len(results) == 12 and len(results.ok) == 12 and not results.failed
    scores = [t.metrics["score"] for t in results]
    assert scores == sorted(scores, reverse=True)
    assert results.best is results[0]
    assert results.best.metrics["score"] == max(scores)
    # the params are the configurations sample_configs predicts, by trial index
    configs = tuning.sample_configs(space, 12, seed=5)
    assert all(t.params == configs[t.index] for t in results)
    # each trial's seed derives from (seed, index) and reached the objective
    assert all(t.metrics["seed_seen"] == t.seed for t in results)
    assert len({t.seed for t in results}) == 12
    rows = results.to_list()
    assert [r["rank"] for r in rows] == list(range(1, 13))
    assert set(rows[0]) == {"rank", "trial", "x", "name", "score", "seed_seen", "time",
                            "status", "error", "seed"}
    assert rows[0]["status"] == "ok" and rows[0]["error"] is None
    text = str(results)
    lines = text.splitlines()
    assert lines[0].startswith("random search: 12 trials, 12 ok, 0 failed")
    header = lines[1].split()
    assert header[:4] == ["rank", "trial", "x", "name"] and header[-1] == "status"
    assert len(lines) == 14
    # aligned: every row's columns end where the header's do
    ends = [i + 1 for i, c in enumerate(lines[1]) if c != " " and (
        i + 1 == len(lines[1]) or lines[1][i + 1] == " ")]
    for line in lines[2:]:
        for end in ends[:-1]:
            assert line[end - 1] != " " and (end == len(line) or line[end] == " "), line
    assert repr(results) == text


def test_lower_is_better_for_losses_and_ties_go_by_trial_index():
    results = tuning.random_search(quadratic, {"x": Choice([0.0, 1.0])}, 8,
                                   executor=SerialExecutor(), metric="score", mode="min",
                                   verbose=0)
    values = [t.metrics["score"] for t in results]
    assert values == sorted(values)
    for a, b in zip(results.trials, results.trials[1:]):
        if a.metrics["score"] == b.metrics["score"]:
            assert a.index < b.index
    # mode inferred: accuracies up, losses down
    r = tuning.random_search(quadratic, {"x": Uniform(0, 1)}, 2, executor=SerialExecutor(),
                             metric="score", verbose=0)
    assert r.mode == "max"
    assert tuning.search._infer_mode("dev_loss") == "min"


def test_objective_without_seed_keyword_is_called_with_params_only():
    results = tuning.random_search(quadratic_no_seed, {"x": Uniform(0, 1)}, 3,
                                   executor=SerialExecutor(), metric="score", verbose=0)
    assert len(results.ok) == 3
    assert all(t.metrics["time"] >= 0 for t in results)     # added when missing


def test_failed_trials_are_recorded_and_the_search_goes_on():
    kinds = ["raise", "diverge", "nan", "inf_other", "not_a_dict", "no_metric", "ok"]
    space = {"kind": Choice(kinds), "x": Uniform(0, 1)}
    results = tuning.random_search(troublesome, space, 40, executor=SerialExecutor(),
                                   seed=1, metric="score", verbose=0)
    assert len(results) == 40
    by_kind = {}
    for t in results:
        by_kind.setdefault(t.params["kind"], []).append(t)
    assert set(by_kind) == set(kinds)
    assert all(t.ok for t in by_kind["ok"])
    expected = {"raise": "RuntimeError: boom", "diverge": "DivergenceError: the cost",
                "nan": "non-finite metrics: score=nan",
                "inf_other": "non-finite metrics: dev_loss=inf",
                "not_a_dict": "must return a dict of metrics; got float",
                "no_metric": "no numeric 'score'"}
    for kind, words in expected.items():
        for t in by_kind[kind]:
            assert t.status == "failed" and words in t.error, (kind, t.error)
    n_ok = len(by_kind["ok"])
    assert all(t.ok for t in results[:n_ok]) and not any(t.ok for t in results[n_ok:])
    assert [t.index for t in results.failed] == sorted(t.index for t in results.failed)
    assert results.best.params["kind"] == "ok"
    assert "failed: RuntimeError: boom" in str(results)
    assert str(results).splitlines()[0].endswith(
        f"{n_ok} ok, {40 - n_ok} failed; sorted by score (max)")


def test_all_failed_has_no_best():
    results = tuning.random_search(troublesome, {"kind": "raise"}, 2,
                                   executor=SerialExecutor(), metric="score", verbose=0)
    assert results.best is None and len(results.failed) == 2


def test_any_concurrent_futures_executor_works():
    from concurrent.futures import ThreadPoolExecutor
    space = {"x": Uniform(0, 1)}
    serial = tuning.random_search(quadratic, space, 6, executor=SerialExecutor(),
                                  metric="score", verbose=0)
    with ThreadPoolExecutor(2) as pool:
        threaded = tuning.random_search(quadratic, space, 6, executor=pool, metric="score",
                                        verbose=0)
    assert without_time(threaded) == without_time(serial)


def test_progress_prints_one_line_per_finished_trial(capsys):
    tuning.random_search(quadratic, {"x": Uniform(0, 1)}, 3, executor=SerialExecutor(),
                         metric="score", verbose=2)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3
    assert err[0].startswith("[1/3] trial 0: score ") and "(x=" in err[0]
    assert err[2].startswith("[3/3] trial 2")


def test_progress_bar_shows_the_best_metric_so_far(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    tuning.random_search(quadratic, {"x": Uniform(0, 1)}, 3, executor=SerialExecutor(),
                         metric="score", verbose=1)
    err = capsys.readouterr().err
    assert "3/3" in err and "trial" in err and "best score" in err
    # Without tqdm, verbose=1 prints the lines of verbose=2.
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    tuning.successive_halving(lambda params, **kwargs: {"score": params["x"]},
                              {"x": Uniform(0, 1)}, 2, eta=2, executor=SerialExecutor(),
                              metric="score", verbose=1)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("rung 0 (1 epoch) [1/2] trial ") and "score" in err[0], err


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(n_trials=0), ValueError, "random_search: n_trials must be >= 1; got 0"),
    (dict(seed=-1), ValueError, "random_search: seed must be >= 0; got -1"),
    (dict(executor="dask"), TypeError, "executor must be a concurrent.futures.Executor"),
    (dict(mode="up"), ValueError, "unknown mode 'up'"),
    (dict(metric=3), TypeError, "metric must be a metric name"),
    (dict(threads=0), ValueError, "threads must be >= 1; got 0"),
    (dict(n_workers=0), ValueError, "n_workers must be >= 1; got 0"),
    (dict(verbose=3), ValueError, "verbose must be <= 2; got 3"),
    (dict(objective=42), TypeError, "objective must be a callable"),
])
def test_random_search_validates_its_arguments(kwargs, error, words):
    args = dict(objective=quadratic, space={"x": Uniform(0, 1)}, n_trials=2,
                executor=SerialExecutor(), verbose=0)
    args.update(kwargs)
    with pytest.raises(error) as info:
        tuning.random_search(**args)
    assert words in str(info.value)


def test_an_unpicklable_objective_is_refused_before_starting_workers():
    with pytest.raises(TypeError) as info:
        tuning.random_search(lambda p: {"score": 1.0}, {"x": Uniform(0, 1)}, 2,
                             metric="score", verbose=0)
    message = str(info.value)
    assert "objective must be picklable" in message and "SerialExecutor()" in message


def test_mlp_objective_names_unknown_hyperparameters_before_any_trial(objective):
    with pytest.raises(ValueError) as info:
        tuning.random_search(objective, {"learning_rate": LogUniform(1e-3, 1)}, 2,
                             executor=SerialExecutor(), verbose=0)
    assert "unknown hyperparameter(s) 'learning_rate'" in str(info.value)
    assert "known: lr, hidden" in str(info.value)


# -- many models at once: local workers and a Dask cluster ---------------------------------

@pytest.fixture(scope="module")
def local_run(objective):
    """A search in local spawn workers (the default executor), and its serial twin."""
    kwargs = dict(space=SPACE, n_trials=6, seed=11, verbose=0)
    local = tuning.random_search(objective, n_workers=2, **kwargs)
    serial = tuning.random_search(objective, executor=SerialExecutor(), **kwargs)
    return local, serial


def test_local_workers_give_the_results_of_a_serial_run(local_run):
    local, serial = local_run
    assert len(local) == 6
    assert without_time(local) == without_time(serial)
    # a diverged configuration (plain SGD at a huge learning rate) is a failed trial
    diverged = [t for t in local.failed if "DivergenceError" in t.error]
    assert diverged and all(t.params["optimizer"] == "sgd" for t in diverged)
    assert local.best.metrics["dev_accuracy"] > 0.5
    assert set(local.best.metrics) >= {"dev_accuracy", "dev_loss", "train_accuracy",
                                       "train_loss", "time"}


def test_local_workers_cap_numba_and_blas_threads():
    results = tuning.random_search(thread_counts, {"x": Uniform(0, 1)}, 2, metric="score",
                                   n_workers=2, verbose=0)
    assert [t.status for t in results] == ["ok", "ok"], results
    assert all(t.metrics["numba"] == 1 and t.metrics["blas"] == 1 for t in results)
    # in this process, a serial trial's cap is lifted afterwards
    import numba
    before = numba.get_num_threads()
    tuning.random_search(thread_counts, {"x": Uniform(0, 1)}, 1, executor=SerialExecutor(),
                         metric="score", verbose=0)
    assert numba.get_num_threads() == before


def test_a_dask_cluster_gives_the_results_of_a_local_run(local_run, objective, tmp_path):
    distributed = pytest.importorskip("distributed")
    local, _ = local_run
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        executor = client.get_executor()
        on_dask = tuning.random_search(objective, SPACE, 6, executor=executor, seed=11,
                                       verbose=0)
        halving = tuning.successive_halving(objective, SPACE, 4, min_epochs=1, eta=2,
                                            executor=executor, seed=11, verbose=0,
                                            workdir=tmp_path / "dask")
    assert without_time(on_dask) == without_time(local)
    serial = tuning.successive_halving(objective, SPACE, 4, min_epochs=1, eta=2,
                                       executor=SerialExecutor(), seed=11, verbose=0,
                                       workdir=tmp_path / "serial")
    assert [{k: v for k, v in r.items() if k not in ("time", "checkpoint")}
            for r in halving.to_list()] == \
        [{k: v for k, v in r.items() if k not in ("time", "checkpoint")}
         for r in serial.to_list()]


# -- the MLP objective -------------------------------------------------------------------

def test_mlp_objective_resumes_from_a_checkpoint_to_the_same_bits(objective, tmp_path):
    params = {"lr": 3e-3, "hidden": (16, 8), "optimizer": "adam", "keep_prob": 0.9}
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    objective(params, seed=4, epochs=2, checkpoint=a)
    resumed = objective(params, seed=4, epochs=5, initial_epoch=2, checkpoint=a)
    straight = objective(params, seed=4, epochs=5, checkpoint=b)
    ma, mb = nn.load(a), nn.load(b)
    assert ma.params.tobytes() == mb.params.tobytes()
    assert ma.optimizer.state.m.tobytes() == mb.optimizer.state.m.tobytes()
    assert ma.layer_states() == mb.layer_states()
    assert {k: v for k, v in resumed.items() if k != "time"} == \
        {k: v for k, v in straight.items() if k != "time"}
    assert any(isinstance(layer, nn.Dropout) for layer in ma.layers)
    assert ma.standardizer is not None


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "rmsprop", "adam"])
def test_mlp_objective_trains_with_each_optimizer(objective, optimizer):
    metrics = objective({"optimizer": optimizer, "lr": 0.05 if optimizer != "adam" else 3e-3,
                         "layers": 2}, seed=1, epochs=3)
    assert metrics["dev_accuracy"] > 0.3, metrics
    model, opt = objective.build({"optimizer": optimizer, "layers": 2}, seed=1)
    assert type(opt).__name__.lower() == optimizer
    assert [layer.n_out for layer in model.layers] == [16, 16, 10]


def test_mlp_objective_is_picklable_and_validates(digits):
    import pickle
    (Xtr, ytr), (Xdev, ydev) = digits
    obj = tuning.mlp_objective(Xtr, ytr, Xdev, ydev, epochs=1)
    clone = pickle.loads(pickle.dumps(obj))
    assert clone({"lr": 1e-2}, seed=0)["dev_loss"] == obj({"lr": 1e-2}, seed=0)["dev_loss"]
    assert "MLPObjective(400 train, 200 dev rows, 64 features, 10 outputs)" == repr(obj)
    cases = [
        (dict(lr=-1.0), ValueError, "mlp_objective: lr must be > 0.0; got -1.0"),
        (dict(optimizer="lbfgs"), ValueError, "unknown optimizer 'lbfgs'"),
        (dict(hidden=0), ValueError, "hidden must be >= 1; got 0"),
        (dict(keep_prob=0.0), ValueError, "keep_prob must be in (0, 1]; got 0.0"),
        (dict(beta1=1.0), ValueError, "beta1 must be < 1.0"),
    ]
    for kwargs, error, words in cases:
        with pytest.raises(error) as info:
            tuning.mlp_objective(Xtr, ytr, Xdev, ydev, **kwargs)
        assert words in str(info.value)
    with pytest.raises(ValueError, match="X_dev must have 64 columns"):
        tuning.mlp_objective(Xtr, ytr, Xdev[:, :5], ydev)
    with pytest.raises(ValueError, match="y_dev must have one row per row of X_dev"):
        tuning.mlp_objective(Xtr, ytr, Xdev, ydev[:5])
    with pytest.raises(ValueError, match="hidden must be an integer|hidden must be >= 1"):
        obj({"hidden": 0})
    with pytest.raises(ValueError, match="initial_epoch=2 resumes from a checkpoint"):
        obj({}, initial_epoch=2, epochs=3)


# -- successive halving ------------------------------------------------------------------

@pytest.fixture(scope="module")
def halving(objective, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("halving")
    results = tuning.successive_halving(objective, SPACE, 9, min_epochs=1, eta=3,
                                        executor=SerialExecutor(), seed=2, workdir=workdir,
                                        verbose=0)
    return results, workdir


def test_successive_halving_spends_its_epochs_on_the_promising_configs(halving):
    results, _ = halving
    assert [(r["configs"], r["epochs"]) for r in results.rungs] == [(9, 1), (3, 3), (1, 9)]
    assert results.epochs_trained == 9 * 1 + 3 * 2 + 1 * 6 == 21
    assert results.epochs_trained < 9 * 9
    assert len(results) == 9
    for rung, budget in ((0, 1), (1, 3), (2, 9)):
        reached = [t for t in results if t.rung >= rung]
        assert all(t.history[rung][0] == budget for t in reached)
    # the survivors of each rung are the best third of it
    for rung in (0, 1):
        ran = [t for t in results if t.rung >= rung and t.ok]
        ranked = sorted(ran, key=lambda t: (-t.history[rung][1]["dev_accuracy"], t.index))
        promoted = {t.index for t in results if t.rung > rung}
        n_ran = results.rungs[rung]["configs"]
        assert promoted == {t.index for t in ranked[:max(1, n_ran // 3)]}


def test_successive_halving_best_is_the_best_survivor(halving):
    results, _ = halving
    last = max(t.rung for t in results)
    survivors = [t for t in results if t.rung == last and t.ok]
    assert results.best in survivors and results.best.epochs == 9
    assert results.best.metrics["dev_accuracy"] == max(
        t.metrics["dev_accuracy"] for t in survivors)
    assert [t.rung for t in results.ok] == sorted((t.rung for t in results.ok), reverse=True)
    text = str(results)
    assert text.startswith("successive halving: 9 configs")
    assert "rungs: 9 x 1 epochs, 3 x 3 epochs, 1 x 9 epochs; 21 epochs trained" in text
    assert text.splitlines()[2].split()[:4] == ["rank", "trial", "rung", "epochs"]
    assert {"rung", "epochs", "checkpoint"} <= set(results.to_list()[0])


def test_successive_halving_resumes_to_the_bits_of_training_straight(halving, objective,
                                                                    tmp_path):
    results, workdir = halving
    best = results.best
    assert best.checkpoint == os.path.join(str(workdir), f"trial-{best.index:04d}.safetensors")
    assert sorted(os.listdir(workdir)) == [f"trial-{i:04d}.safetensors" for i in range(9)]
    straight = tmp_path / "straight.npz"
    metrics = objective(best.params, seed=best.seed, epochs=9, checkpoint=straight)
    assert nn.load(best.checkpoint).params.tobytes() == nn.load(straight).params.tobytes()
    assert metrics["dev_loss"] == best.metrics["dev_loss"]


def test_successive_halving_drops_failed_configs_and_cleans_its_temp_folder(objective):
    space = {"lr": Choice([1e3, 3e-3]), "optimizer": "sgd"}
    results = tuning.successive_halving(objective, space, 6, min_epochs=1, max_epochs=4,
                                        eta=2, executor=SerialExecutor(), seed=0, verbose=0)
    diverged = [t for t in results if t.params["lr"] == 1e3]
    assert diverged and all(not t.ok and t.rung == 0 for t in diverged)
    assert all(t.checkpoint is None for t in results)
    assert results.best.params["lr"] == 3e-3 and results.best.epochs == 4
    assert [r["epochs"] for r in results.rungs] == [1, 2, 4]


def test_successive_halving_default_budget_and_validation(objective):
    budgets = []

    def fake(params, *, seed, epochs, initial_epoch, checkpoint):
        budgets.append((initial_epoch, epochs))
        return {"score": params["x"] * epochs}
    r = tuning.successive_halving(fake, {"x": Uniform(0, 1)}, 10, min_epochs=2, eta=3,
                                  executor=SerialExecutor(), metric="score", verbose=0)
    assert [(x["configs"], x["epochs"]) for x in r.rungs] == [(10, 2), (3, 6), (1, 18)]
    assert budgets.count((0, 2)) == 10 and budgets.count((2, 6)) == 3
    assert budgets.count((6, 18)) == 1
    cases = [
        (dict(objective=quadratic), TypeError,
         "objective must accept the keywords seed, epochs, initial_epoch, checkpoint"),
        (dict(eta=1), ValueError, "successive_halving: eta must be >= 2; got 1"),
        (dict(max_epochs=1, min_epochs=3), ValueError, "max_epochs must be >= 3; got 1"),
        (dict(n_configs=0), ValueError, "n_configs must be >= 1; got 0"),
        (dict(workdir=3), TypeError, "workdir must be a folder path or None"),
    ]
    for kwargs, error, words in cases:
        args = dict(objective=objective, space={"lr": LogUniform(1e-3, 1)}, n_configs=3,
                    executor=SerialExecutor(), verbose=0)
        args.update(kwargs)
        with pytest.raises(error) as info:
            tuning.successive_halving(**args)
        assert words in str(info.value)


# -- plotting ---------------------------------------------------------------------------

def test_plot_uses_a_log_axis_for_log_sampled_params(local_run, tmp_path):
    pytest.importorskip("matplotlib")
    local, _ = local_run
    fig = local._figure("lr")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "dev_accuracy"
    assert "failed, not shown" in ax.get_title()
    assert local._figure("beta1").axes[0].get_xscale() == "linear"
    path = local.plot(tmp_path / "lr.png")
    assert path == str(tmp_path / "lr.png")
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path)) == ["lr.png"]       # no temporary file left
    with pytest.raises(ValueError, match="no successful trial has a numeric 'nothing'"):
        local.plot(tmp_path / "x.png", param="nothing")


# -- babysitting one model -----------------------------------------------------------------

def sitter_model(seed=0):
    model = nn.Sequential([nn.Dense(64, 16, activation="relu"), nn.Dropout(0.9),
                           nn.Dense(16, 10)], seed=seed)
    return model


class WriteAt(nn.Callback):
    """Writes the control file after given epochs (counted from 1): {epoch: commands}."""

    def __init__(self, path, plan):
        self.path, self.plan = path, plan

    def on_epoch_end(self, model, epoch, logs, history):
        if epoch in self.plan:
            text = self.plan[epoch]
            self.path.write_text(text if isinstance(text, str) else json.dumps(text))


def fit_kwargs(digits, epochs):
    (Xtr, ytr), (Xdev, ydev) = digits
    return dict(X=Xtr, y=ytr, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(1e-2),
                epochs=epochs, batch_size=64, seed=3, validation_data=(Xdev, ydev),
                verbose=0)


def run_fit(model, digits, epochs, callbacks=(), **extra):
    kw = fit_kwargs(digits, epochs)
    X, y = kw.pop("X"), kw.pop("y")
    kw.update(extra)
    return model.fit(X, y, callbacks=list(callbacks), **kw)


def test_babysitter_control_file_changes_lr_checkpoints_and_stops(digits, tmp_path):
    control = tmp_path / "control.json"
    ckpt = str(tmp_path / "ckpt-{epoch}.safetensors")
    sitter = Babysitter(control=control, checkpoint=ckpt)
    plan = {2: {"lr": 0.002}, 3: {"lr": 0.002, "checkpoint": True}, 5: {"stop": True}}
    model = sitter_model()
    history = run_fit(model, digits, 10, [WriteAt(control, plan), sitter])
    assert sitter.lr_changes == [(2, 0.01, 0.002)]
    assert history["lr"] == [0.01, 0.01, 0.002, 0.002, 0.002]
    assert sitter.saved == [(3, str(tmp_path / "ckpt-3.safetensors"))]
    assert history.epochs == [1, 2, 3, 4, 5]
    assert history.stop_reason == "stopped by the Babysitter after epoch 5"
    assert sitter.epoch == 5 and set(sitter.logs) >= {"loss", "dev_accuracy", "lr"}

    # Resume from the checkpoint: the same bits as the run that went on from it.
    straight = sitter_model()
    straight_sitter = Babysitter(control=tmp_path / "c2.json")
    run_fit(straight, digits, 6, [WriteAt(tmp_path / "c2.json", {2: {"lr": 0.002}}),
                                  straight_sitter])
    resumed = nn.load(tmp_path / "ckpt-3.safetensors")
    assert resumed.optimizer.lr == 0.002
    kw = fit_kwargs(digits, 6)
    resumed.fit(kw.pop("X"), kw.pop("y"), **{**kw, "optimizer": None}, initial_epoch=3)
    assert resumed.params.tobytes() == straight.params.tobytes()


def test_babysitter_ignores_a_stale_control_file_and_survives_bad_ones(digits, tmp_path):
    control = tmp_path / "control.json"
    control.write_text(json.dumps({"stop": True, "lr": 5.0}))     # left by an earlier run
    sitter = Babysitter(control=control)
    plan = {1: "{not json", 2: {"lr": -1}, 3: {"checkpoint": True}, 4: {"speed": 2}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = run_fit(sitter_model(), digits, 5, [WriteAt(control, plan), sitter])
    assert history.epochs == [1, 2, 3, 4, 5] and history.stop_reason is None
    assert sitter.lr_changes == [] and sitter.saved == []
    messages = [str(w.message) for w in caught]
    for words in ("is not valid JSON", "lr must be a number > 0; got -1",
                  "checkpoint is true but the Babysitter has no checkpoint path",
                  "unknown command 'speed'"):
        assert any(words in m for m in messages), (words, messages)


def test_babysitter_steers_a_fit_running_in_a_thread(digits, tmp_path):
    (Xtr, ytr), _ = digits
    sitter = Babysitter(checkpoint=tmp_path / "sat.npz")
    model = sitter_model()
    kw = fit_kwargs(digits, 100_000)
    kw.pop("X"), kw.pop("y")
    sitter.start(model, Xtr, ytr, **kw)
    try:
        assert sitter.wait(2, timeout=60)
        sitter.set_lr(1e-3)
        seen = sitter.epoch
        assert sitter.wait(seen + 2, timeout=60)
        sitter.save_checkpoint(tmp_path / "mid.npz")
        assert sitter.wait(sitter.epoch + 2, timeout=60)
        sitter.stop(checkpoint=True)      # save and stop at the same epoch
        history = sitter.join(timeout=60)
    finally:
        sitter.stop()
    assert len(sitter.lr_changes) == 1
    changed_at, old, new = sitter.lr_changes[0]
    assert (old, new) == (0.01, 1e-3) and changed_at > 2
    assert history["lr"][:changed_at] == [0.01] * changed_at
    assert set(history["lr"][changed_at:]) == {1e-3}
    assert len(history.epochs) < 100_000 and "Babysitter" in history.stop_reason
    (mid_epoch, mid), (epoch_saved, path) = sitter.saved
    assert mid == str(tmp_path / "mid.npz") and mid_epoch > changed_at
    assert nn.load(mid).optimizer.lr == 1e-3
    assert path == str(tmp_path / "sat.npz") and epoch_saved == len(history.epochs)
    assert nn.load(path).params.tobytes() == model.params.tobytes()
    assert not sitter.wait(10**9, timeout=5)       # training is over: returns at once


def test_babysitter_join_reraises_the_fit_error_and_validates(digits):
    (Xtr, ytr), _ = digits
    sitter = Babysitter()
    sitter.start(sitter_model(), Xtr, ytr + 20, loss=nn.SoftmaxCrossEntropy(), epochs=5,
                 verbose=0)
    with pytest.raises(ValueError, match="outside \\[0, 10\\)"):
        sitter.join(timeout=60)
    assert not sitter.wait(1, timeout=5)
    with pytest.raises(ValueError, match="Babysitter.set_lr: lr must be > 0.0; got -1.0"):
        sitter.set_lr(-1)
    with pytest.raises(ValueError, match="no path; pass path="):
        sitter.save_checkpoint()
    with pytest.raises(ValueError, match="no path; pass checkpoint=PATH"):
        sitter.stop(checkpoint=True)
    with pytest.raises(TypeError, match="checkpoint must be True, False or a path; got 3"):
        sitter.stop(checkpoint=3)
    with pytest.raises(TypeError, match="control must be a path or None; got 3"):
        Babysitter(control=3)
    with pytest.raises(RuntimeError, match="no fit was started"):
        Babysitter().join()


# -- python -m nn tune ------------------------------------------------------------------------

def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "nn", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_cli_tune_help():
    result = run_cli("tune", "--help", timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m nn tune")
    for option in ("--trials", "--epochs", "--data", "--workers", "--plot", "--seed",
                   "--halving", "--lr"):
        assert option in result.stdout
    main_help = run_cli("--help", timeout=120)
    assert "python -m nn tune --help" in main_help.stdout


def test_cli_tune_runs_a_search_in_worker_processes(tmp_path):
    png = tmp_path / "lr.png"
    result = run_cli("tune", "--trials", "4", "--epochs", "2", "--workers", "2", "--seed",
                     "1", "--plot", str(png))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "data: digits (embedded, 8x8): 1078 train, 360 dev rows" in out
    assert "random search: 4 trials" in out
    header = next(line for line in out.splitlines() if line.startswith("rank"))
    assert header.split()[:6] == ["rank", "trial", "lr", "hidden", "beta1", "batch_size"]
    assert re_count(r"^\s+\d+\s+\d+\s+\S+", out) >= 4
    assert "best: trial " in out and f"written to {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert len(progress) == 4 and progress[-1].startswith("[4/4] trial ")


def re_count(pattern, text):
    import re
    return len(re.findall(pattern, text, re.MULTILINE))


def write_idx(path, array, magic):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", s) for s in array.shape)
    path.write_bytes(header + array.tobytes())


def test_cli_tune_successive_halving_on_mnist_format_files(tmp_path, capsys):
    from nn.__main__ import main
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 240), ("t10k", 60)):
        labels = np.arange(n) % 4
        images = rng.integers(0, 60, size=(n, 28, 28))
        for i, label in enumerate(labels):
            r, c = divmod(int(label), 2)
            images[i, 14 * r:14 * r + 14, 14 * c:14 * c + 14] += 150
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images, 0x803)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels, 0x801)
    code = main(["tune", "--data", str(tmp_path), "--halving", "--trials", "4", "--epochs",
                 "4", "--eta", "2", "--workers", "0", "--quiet", "--no-plot", "--hidden",
                 "8", "16"])
    assert code == 0
    out, err = capsys.readouterr()
    assert f"MNIST-format files in {tmp_path}" in out
    assert "successive halving: 4 configs" in out
    assert "rungs: 4 x 1 epochs, 2 x 2 epochs, 1 x 4 epochs" in out
    assert err == ""
    assert not list(tmp_path.glob("*.png"))


def test_cli_tune_rejects_bad_options(capsys):
    from nn.__main__ import main
    with pytest.raises(SystemExit) as info:
        main(["tune", "--trials", "0"])
    assert info.value.code == 2
    assert "--trials must be >= 1; got 0" in capsys.readouterr().err


# -- the example --------------------------------------------------------------------------

def test_tuning_example_runs(tmp_path):
    import importlib.util
    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "tuning.py"
    spec = importlib.util.spec_from_file_location("tuning_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import io
    buf = io.StringIO()
    random_results, halving_results = module.main(trials=4, epochs=2, seed=0, file=buf,
                                                  workdir=tmp_path)
    text = buf.getvalue()
    assert "random search: 4 trials" in text and "successive halving" in text
    assert random_results.best is not None and halving_results.best is not None
    assert math.isfinite(random_results.best.metrics["dev_accuracy"])
