"""Thread settings: every split of the cores between Numba and BLAS, against the one
``nn.set_num_threads`` chooses; and, per process, every BLAS backend and OpenMP policy.

``track_api_over_best`` is median(epoch time with ``nn.set_num_threads(threads)``) over
the fastest median among every (Numba threads, BLAS threads) pair of at most ``threads``
each, set directly with ``numba.set_num_threads`` and threadpoolctl. 1.0 means the API
picks the best; the target is at most 1.2. It runs in asv's process, so under the one
backend and policy that process has.

The BLAS backend and the OpenMP runtimes' wait policy can only be chosen once per
process (the runtimes read their environment when they load), so the matrix starts one
fresh process per (backend, environment) combination (``subprocess`` with a modified
environment, never a fork; ``COMBOS``), which times every split of the cores::

    python -m asv_benchmarks.benchmarks.bench_threads --matrix [--repeats 3]
        [--rows 4096] [--combos default mkl ...] [--only-threads 2]
        [--loads none "one core"] [--max-wait 5] [--json out.json]
    python -m asv_benchmarks.benchmarks.bench_threads --user-code [--user-combos ...]

``--matrix`` prints markdown tables (CPU model named) of samples/s for the 784-256-256-10
ReLU MLP and its BatchNorm + Dropout(0.8) variant, Adam lr 1e-3, float32, batch 32, 256
and 1024, on 1 thread and on all cores (every split), then the defaults against the best
setting found per cell. "default" is a process where the user set nothing, "mkl" one
where the user only set ``NUMBA_NN_BLAS=mkl``; rows with ``NUMBA_NN_THREAD_POLICY=none``
show a runtime's own defaults or the user's explicit variables.

How it is measured on a shared, noisy machine: all the processes stay alive, each
stopped (SIGSTOP) except the one being timed, so one epoch runs at a time and idle
spinning threads cost the others nothing; every repeat times every (combination, model,
batch, split) once, in a rotated order. Before each epoch the driver waits up to
``--max-wait`` seconds for other processes to use under ``QUIET`` of the machine
(/proc/stat, VM steal included), and records the share they used during the epoch;
medians are over the quiet epochs when at least 3 are, else over all (marked ~).
``--loads "one core"`` also times every setting beside a busy loop of our own (a
neighbour using one core). The default set (10 combinations, 3 repeats) takes about
5 minutes on an idle 2-core machine, longer when it has to wait.

``--user-code`` times the user's own NumPy matmul and Numba ``prange`` loops in a fresh
process without ``nn``, after ``import nn``, and after ``import nn`` plus a ``fit``: what
the library's process-wide settings cost code that is not the library's.
"""
import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import timeit

import numpy as np

from .common import Benchmark, build_mlp, mnist_like, set_threads
from .machine import cpu_model

N_ROWS = 2048


def _epoch(batch):
    import nn
    X, y = mnist_like(N_ROWS)
    model = build_mlp()
    loss, opt = nn.SoftmaxCrossEntropy(), nn.Adam(lr=1e-3)
    return lambda: model.fit(X, y, loss=loss, optimizer=opt, epochs=1, batch_size=batch)


def _raw_threads(numba_threads, blas_threads):
    import numba
    import threadpoolctl
    numba.set_num_threads(numba_threads)
    threadpoolctl.threadpool_limits(blas_threads, user_api="blas")


def api_over_best(batch, threads, repeat=5):
    """(ratio, {setting: median seconds}) for one epoch of the 784-256-256-10 MLP."""
    set_threads(threads)  # NotImplementedError (asv: skip) without enough cores
    run = _epoch(batch)
    settings = {"api": lambda: set_threads(threads)}
    for a, b in itertools.product(range(1, threads + 1), repeat=2):
        settings[f"numba={a} blas={b}"] = lambda a=a, b=b: _raw_threads(a, b)
    times = {k: [] for k in settings}
    for apply in settings.values():
        apply()
        run()  # warm up under each setting
    for _ in range(repeat):  # interleaved: a noisy moment hits every setting
        for key, apply in settings.items():
            apply()
            times[key].append(timeit.timeit(run, number=1))
    set_threads(threads)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return med["api"] / min(med.values()), med


class ThreadSettings(Benchmark):
    params = [[32, 256], [1, 2]]
    param_names = ["batch", "threads"]
    timeout = 600

    def track_api_over_best(self, batch, threads):
        return api_over_best(batch, threads)[0]

    track_api_over_best.unit = "ratio"


# -- the per-process matrix ------------------------------------------------------------

#: Variables a combination may set; the child gets none of them unless the combination
#: names it (so the library's own defaults apply to whatever it leaves out).
CONTROLLED = ("NUMBA_NN_BLAS", "NUMBA_NN_THREAD_POLICY", "OMP_WAIT_POLICY", "KMP_BLOCKTIME",
              "KMP_LIBRARY", "GOMP_SPINCOUNT", "MKL_THREADING_LAYER", "NUMBA_THREADING_LAYER",
              "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "NUMBA_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT")

#: name -> environment of the child. "default" is what a user gets who sets nothing;
#: "mkl" what one gets who only chooses oneMKL. ``NUMBA_NN_THREAD_POLICY=none`` stops
#: the library from setting anything, so "... unset" rows are the runtimes' own defaults.
_OFF = {"NUMBA_NN_THREAD_POLICY": "none"}
COMBOS = {
    "default": {},
    "openblas": {"NUMBA_NN_BLAS": "openblas"},
    "openblas PASSIVE": {"NUMBA_NN_BLAS": "openblas", **_OFF, "OMP_WAIT_POLICY": "PASSIVE"},
    "openblas unset": {"NUMBA_NN_BLAS": "openblas", **_OFF},
    "openblas ACTIVE": {"NUMBA_NN_BLAS": "openblas", **_OFF, "OMP_WAIT_POLICY": "ACTIVE"},
    "openblas GOMP_SPINCOUNT=10k": {"NUMBA_NN_BLAS": "openblas", **_OFF,
                                    "GOMP_SPINCOUNT": "10000"},
    "openblas GOMP_SPINCOUNT=100k": {"NUMBA_NN_BLAS": "openblas", **_OFF,
                                     "GOMP_SPINCOUNT": "100000"},
    "openblas workqueue": {"NUMBA_NN_BLAS": "openblas", **_OFF,
                           "NUMBA_THREADING_LAYER": "workqueue"},
    "mkl": {"NUMBA_NN_BLAS": "mkl"},
    "mkl INTEL": {"NUMBA_NN_BLAS": "mkl", "MKL_THREADING_LAYER": "INTEL"},
    "mkl PASSIVE": {"NUMBA_NN_BLAS": "mkl", **_OFF, "OMP_WAIT_POLICY": "PASSIVE"},
    "mkl unset": {"NUMBA_NN_BLAS": "mkl", **_OFF},
    "mkl ACTIVE": {"NUMBA_NN_BLAS": "mkl", **_OFF, "OMP_WAIT_POLICY": "ACTIVE"},
    "mkl PASSIVE KMP_BLOCKTIME=200": {"NUMBA_NN_BLAS": "mkl", **_OFF,
                                      "OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "200"},
    "mkl PASSIVE KMP_BLOCKTIME=5": {"NUMBA_NN_BLAS": "mkl", **_OFF,
                                    "OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "5"},
    "mkl GNU PASSIVE": {"NUMBA_NN_BLAS": "mkl", **_OFF, "MKL_THREADING_LAYER": "GNU",
                        "OMP_WAIT_POLICY": "PASSIVE"},
    "mkl GNU unset": {"NUMBA_NN_BLAS": "mkl", **_OFF, "MKL_THREADING_LAYER": "GNU"},
    "mkl GNU GOMP_SPINCOUNT=10k": {"NUMBA_NN_BLAS": "mkl", **_OFF,
                                   "MKL_THREADING_LAYER": "GNU", "GOMP_SPINCOUNT": "10000"},
    "mkl GNU GOMP_SPINCOUNT=30k": {"NUMBA_NN_BLAS": "mkl", **_OFF,
                                   "MKL_THREADING_LAYER": "GNU", "GOMP_SPINCOUNT": "30000"},
    "mkl GNU GOMP_SPINCOUNT=100k": {"NUMBA_NN_BLAS": "mkl", **_OFF,
                                    "MKL_THREADING_LAYER": "GNU", "GOMP_SPINCOUNT": "100000"},
    "mkl GNU ACTIVE": {"NUMBA_NN_BLAS": "mkl", **_OFF, "MKL_THREADING_LAYER": "GNU",
                       "OMP_WAIT_POLICY": "ACTIVE"},
    "mkl SEQUENTIAL PASSIVE": {"NUMBA_NN_BLAS": "mkl", **_OFF,
                               "MKL_THREADING_LAYER": "SEQUENTIAL",
                               "OMP_WAIT_POLICY": "PASSIVE"},
    "mkl workqueue PASSIVE": {"NUMBA_NN_BLAS": "mkl", **_OFF, "OMP_WAIT_POLICY": "PASSIVE",
                              "NUMBA_THREADING_LAYER": "workqueue"},
}
#: The combinations ``--matrix`` runs unless ``--combos`` names others (``--combos``
#: takes any of ``COMBOS``): the defaults, each runtime's own defaults, and per backend
#: the settings that came closest to the best.
DEFAULT_COMBOS = ["default", "openblas unset", "openblas GOMP_SPINCOUNT=10k",
                  "openblas workqueue", "mkl", "mkl PASSIVE", "mkl GNU PASSIVE",
                  "mkl GNU GOMP_SPINCOUNT=100k", "mkl PASSIVE KMP_BLOCKTIME=200",
                  "mkl SEQUENTIAL PASSIVE"]

MODELS = {"mlp": {}, "bn+dropout": {"batch_norm": True, "keep_prob": 0.8}}
MATRIX_BATCHES = (32, 256, 1024)
LR = 1e-3
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _child_env(combo_env):
    env = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    env.update(combo_env)
    paths = [ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _splits(threads):
    """(numba, blas) pairs: (1, 1) for one thread; every pair up to ``threads`` else."""
    if threads == 1:
        return [(1, 1)]
    return [(a, b) for a in range(1, threads + 1) for b in range(1, threads + 1)
            if max(a, b) == threads]


_TAG = "bench_threads: "  # marks the protocol's lines among anything a library prints


def _serve(runs, info):
    """The child's loop: announce ``info`` (one JSON line), then for each key read on
    stdin run that setting once and answer its seconds; "quit" ends."""
    print(_TAG + json.dumps(info), flush=True)
    for line in sys.stdin:
        key = line.strip()
        if key == "quit":
            break
        apply, run = runs[key]
        apply()
        t0 = time.perf_counter()
        run()
        print(_TAG + repr(time.perf_counter() - t0), flush=True)


def _worker(spec):
    """In the fresh child: build every (model, batch, split), run each once (warm-up,
    never timed), then serve timings."""
    import numba
    import threadpoolctl

    import kernels
    import nn
    rows, max_threads = spec["rows"], spec["threads"]
    default_numba = numba.get_num_threads()
    X, y = mnist_like(rows)
    runs = {}
    for kind in spec["models"]:
        for batch in spec["batches"]:
            model = build_mlp(**MODELS[kind])
            opt, loss = nn.Adam(lr=LR), nn.SoftmaxCrossEntropy()
            run = (lambda model=model, opt=opt, loss=loss, batch=batch:
                   model.fit(X, y, loss=loss, optimizer=opt, epochs=1, batch_size=batch,
                             verbose=0))
            for threads in spec.get("thread_counts") or sorted({1, max_threads}):
                for a, b in _splits(threads):
                    runs[f"{kind}|{batch}|{a}|{b}"] = (
                        lambda a=a, b=b: _raw_threads(a, b), run)
    info = {"backend": kernels.BLAS_BACKEND, "default_numba_threads": default_numba,
            "default_blas_threads": nn.get_num_threads()["blas"]}
    for apply, run in runs.values():
        apply()
        run()
    info["threading_layer"] = numba.threading_layer()
    info["pools"] = [f"{p['internal_api']}:{p.get('threading_layer') or '-'}:"
                     f"{os.path.basename(p['filepath'])}"
                     for p in threadpoolctl.threadpool_info()]
    info["keys"] = list(runs)
    _serve(runs, info)


class _Child:
    """A fresh Python process (``subprocess``, never a fork) with its own environment,
    serving timings; stopped (SIGSTOP) whenever it is not the one being timed, so its
    idle threads (spinning ones included) take no CPU from the others."""

    def __init__(self, args, combo_env, cmd=None):
        cmd = (cmd or [sys.executable, "-m", "asv_benchmarks.benchmarks.bench_threads"]) + args
        self.proc = subprocess.Popen(cmd, env=_child_env(combo_env), cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self._answer()
        if line is None:
            raise RuntimeError(f"{' '.join(args)} {combo_env}: the child failed "
                               f"(exit {self.proc.wait()}).")
        self.info = json.loads(line)
        self.stop()

    def _answer(self):
        for line in self.proc.stdout:
            if line.startswith(_TAG):
                return line[len(_TAG):]
        return None

    def stop(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def time(self, key):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.proc.stdin.write(key + "\n")
        self.proc.stdin.flush()
        line = self._answer()
        self.stop()
        if line is None:
            raise RuntimeError(f"the child died timing {key} (exit {self.proc.wait()}).")
        return float(line)

    def close(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


#: An epoch counts as quiet when processes other than the benchmark's own used less
#: than this fraction of the machine (CPU time from /proc/stat, VM steal included).
QUIET = 0.10
#: "none": the benchmark alone; "one core": each epoch also runs against a busy loop in
#: a process of its own (one core's worth of someone else's work, as on a shared machine).
LOADS = ("none", "one core")


def _busy_ticks():
    """CPU ticks the whole machine spent busy (steal included), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return v[0] + v[1] + v[2] + sum(v[5:8])


def _process_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(rest[11]) + int(rest[12])  # utime + stime, every thread of the process


def _wait_for_quiet(max_wait, pids=()):
    """Sleep until processes other than ``pids`` used under ``QUIET`` of the machine
    over 0.25 s, at most ``max_wait`` seconds; the seconds waited."""
    t0 = time.perf_counter()
    ncpu, hz = os.cpu_count() or 1, os.sysconf("SC_CLK_TCK")
    while time.perf_counter() - t0 < max_wait:
        busy0, own0, w0 = _busy_ticks(), sum(map(_process_ticks, pids)), time.perf_counter()
        if busy0 is None:
            break
        time.sleep(0.25)
        busy1, own1, w1 = _busy_ticks(), sum(map(_process_ticks, pids)), time.perf_counter()
        if (busy1 - busy0 - (own1 - own0)) / hz / ((w1 - w0) * ncpu) < QUIET:
            break
        time.sleep(0.5)
    return time.perf_counter() - t0


def _busy_loop():
    """A process that spins one core until killed; stopped (SIGSTOP) until needed."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    os.kill(proc.pid, signal.SIGSTOP)
    return proc


def _interleave(children, repeats, loads=("none",), log=None, label="", max_wait=5.0,
                on_repeat=None):
    """{name: {"key|load": [[seconds, others' share of the machine]...]}}: ``repeats``
    rounds, each timing every (child, key, load) once, in a rotated order, one child
    running at a time (with the busy loop beside it under load "one core"). Before each
    epoch it waits up to ``max_wait`` seconds for the machine to be quiet. ``on_repeat``
    is called with the times so far after each round."""
    jobs = [(name, key, load) for load in loads for name, ch in children.items()
            for key in ch.info["keys"]]
    times = {name: {f"{key}|{load}": [] for key in ch.info["keys"] for load in loads}
             for name, ch in children.items()}
    hog = _busy_loop() if "one core" in loads else None
    ncpu, hz = os.cpu_count() or 1, os.sysconf("SC_CLK_TCK")
    waited = 0.0
    try:
        for r in range(repeats):
            shift = (r * len(jobs)) // max(repeats, 1)
            t0 = time.perf_counter()
            for name, key, load in jobs[shift:] + jobs[:shift]:
                pids = [children[name].proc.pid] + ([hog.pid] if hog else [])
                waited += _wait_for_quiet(max_wait, [os.getpid()])
                if load == "one core":
                    os.kill(hog.pid, signal.SIGCONT)
                busy0, own0, w0 = _busy_ticks(), sum(map(_process_ticks, pids)), time.perf_counter()
                seconds = children[name].time(key)
                busy1, own1, w1 = _busy_ticks(), sum(map(_process_ticks, pids)), time.perf_counter()
                if load == "one core":
                    os.kill(hog.pid, signal.SIGSTOP)
                others = 0.0 if busy0 is None else max(
                    0.0, (busy1 - busy0 - (own1 - own0)) / hz / ((w1 - w0) * ncpu))
                times[name][f"{key}|{load}"].append([seconds, round(others, 3)])
            if log:
                quiet = sum(v[-1][1] < QUIET for t in times.values() for v in t.values())
                print(f"{label}repeat {r + 1}/{repeats}: {time.perf_counter() - t0:.0f} s "
                      f"({waited:.0f} s waiting for a quiet machine so far; {quiet} of "
                      f"{len(jobs)} epochs quiet)", file=log, flush=True)
            if on_repeat:
                on_repeat(times)
    finally:
        if hog:
            hog.kill()
            hog.wait()
    return times


def run_matrix(combos, rows, repeats, threads, models=tuple(MODELS),
               batches=MATRIX_BATCHES, loads=("none",), max_wait=5.0, log=sys.stderr,
               on_repeat=None, thread_counts=None):
    """{combo: {"info": ..., "times": {"key|load": [[seconds, others]...]}}}: one fresh
    process per combination, all alive at once (each stopped while another runs),
    ``repeats`` interleaved epochs of every (combination, model, batch, split, load)."""
    spec = json.dumps({"rows": rows, "threads": threads, "models": list(models),
                       "batches": list(batches), "thread_counts": thread_counts})
    children = {}
    try:
        for combo in combos:
            t0 = time.perf_counter()
            children[combo] = _Child(["--worker", spec], COMBOS[combo])
            info = children[combo].info
            print(f"started {combo}: {info['backend']}, numba {info['threading_layer']}, "
                  f"{time.perf_counter() - t0:.0f} s", file=log, flush=True)
        infos = {c: ch.info for c, ch in children.items()}
        times = _interleave(children, repeats, loads, log, max_wait=max_wait,
                            on_repeat=on_repeat and (lambda t: on_repeat(
                                {c: {"info": infos[c], "times": t[c]} for c in t})))
    finally:
        for ch in children.values():
            ch.close()
    return {c: {"info": children[c].info, "times": times[c]} for c in combos}


def _median(samples):
    """(median seconds over the quiet samples, or over all when fewer than 3 are quiet;
    whether it is the quiet one)."""
    quiet = [t for t, others in samples if others < QUIET]
    if len(quiet) >= 3:
        return float(np.median(quiet)), True
    return float(np.median([t for t, _ in samples])), False


def summarize(results, rows, load="none"):
    """best: {combo: {(model, batch, threads): (samples/s, (numba, blas), quiet)}}, the
    fastest split per cell; api: {combo: {cell: (samples/s, quiet)}} at the API's split
    (t, t). ``quiet``: the median is over quiet epochs (see ``_median``)."""
    best, api = {}, {}
    for combo, res in results.items():
        best[combo], api[combo] = {}, {}
        for key, samples in res["times"].items():
            kind, batch, a, b, key_load = key.split("|")
            if key_load != load:
                continue
            batch, a, b = int(batch), int(a), int(b)
            seconds, quiet = _median(samples)
            rate = rows / seconds
            cell = (kind, batch, max(a, b))
            if cell not in best[combo] or rate > best[combo][cell][0]:
                best[combo][cell] = (rate, (a, b), quiet)
            if a == b:
                api[combo][cell] = (rate, quiet)
    return best, api


def _k(rate, quiet=True):
    return f"{rate / 1e3:.1f}k" + ("" if quiet else "~")


def print_matrix(results, rows, repeats, loads=("none",), out=sys.stdout):
    """Print the tables; return {(load, "default"/"mkl"): (worst best/ours, cell)}."""
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores. Samples/s, one epoch of "
          f"{rows} rows, float32, Adam lr {LR}; medians of {repeats} epochs per setting, "
          f"interleaved across every setting and process, over the quiet epochs (others "
          f"used < {QUIET:.0%} of the machine; ~: fewer than 3 were quiet, median of all).",
          file=out)
    worst = {}
    for load in loads:
        best, api = summarize(results, rows, load)
        cells = sorted(next(iter(best.values())), key=lambda c: (c[0] != "mlp", c[2], c[1]))
        print(file=out)
        print(f"Load: {load} (beside the benchmark). Every combination at the API's split "
              f"(`nn.set_num_threads(t)`: t Numba and t BLAS threads); in brackets the best "
              f"other split (numba/blas) where it was faster.", file=out)
        print(file=out)
        head = [f"{m} b{b} t{t}" for m, b, t in cells]
        print("| backend, environment | " + " | ".join(head) + " |", file=out)
        print("| --- |" + " ---: |" * len(cells), file=out)
        for combo in results:
            info = results[combo]["info"]
            label = f"{combo} ({info['backend']}, numba {info['threading_layer']})"
            vals = []
            for c in cells:
                rate, split, quiet = best[combo][c]
                text = _k(*api[combo][c])
                if split[0] != split[1] and rate > api[combo][c][0]:
                    text += f" ({_k(rate, quiet)} {split[0]}/{split[1]})"
                vals.append(text)
            print(f"| {label} | " + " | ".join(vals) + " |", file=out)
        print(file=out)
        print(f"Load: {load}. The defaults against the best a user can reach (any "
              f"combination here, any split); \"mkl\" is a user who only sets "
              f"NUMBA_NN_BLAS=mkl:", file=out)
        print(file=out)
        print("| model | batch | threads | default | best overall (where) | best/default | "
              "mkl | best oneMKL (where) | best/mkl |", file=out)
        print("| --- | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: |", file=out)
        for c in cells:
            row = []
            for mine, backends in (("default", ("mkl", "openblas")), ("mkl", ("mkl",))):
                pool = [k for k in results if results[k]["info"]["backend"] in backends]
                if mine not in results or not pool:
                    row += ["-", "-", "-"]
                    continue
                top = max(pool, key=lambda k: best[k][c][0])
                rate, split, quiet = best[top][c]
                ours = api[mine][c]
                ratio = rate / ours[0]
                worst[load, mine] = max(worst.get((load, mine), (0.0, None)), (ratio, c))
                row += [_k(*ours), f"{_k(rate, quiet)} ({top}, {split[0]}/{split[1]})",
                        f"{ratio:.2f}"]
            m, b, t = c
            print(f"| {m} | {b} | {t} | " + " | ".join(row) + " |", file=out)
        print(file=out)
        for (load_, mine), (ratio, c) in worst.items():
            if load_ == load:
                print(f"Load {load}: worst best/{mine}: {ratio:.2f} at {c[0]} batch {c[1]}, "
                      f"{c[2]} thread(s).", file=out)
    return worst


# -- the user's own code, with and without the library ---------------------------------

#: The user's own code, run by ``python -c`` so that nothing of this suite (whose
#: ``common`` imports ``nn``) is loaded unless the mode imports it: argv[1] is "plain"
#: (no nn), "import" (import nn first) or "fit" (import nn and train once first).
USER_SCRIPT = r"""
import json, os, sys, time
import numpy as np
import numba
from numba import njit, prange

mode, tag = sys.argv[1], sys.argv[2]
if mode in ("import", "fit"):
    import nn
if mode == "fit":
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((512, 784)).astype(np.float32), rng.integers(0, 10, 512)
    nn.mlp((784, 256, 256, 10), activation="relu", seed=0).fit(
        X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(lr=1e-3), epochs=1,
        batch_size=64, verbose=0)


@njit(parallel=True)
def scale_add(x, out):
    for i in prange(x.size):
        out[i] = 2.0 * x[i] + 1.0


rng = np.random.default_rng(0)
A = rng.standard_normal((256, 784)).astype(np.float32)
B = rng.standard_normal((784, 256)).astype(np.float32)
C = rng.standard_normal((1024, 1024)).astype(np.float32)
small, big = np.ones(100_000, np.float32), np.ones(4_000_000, np.float32)
out_s, out_b = np.empty_like(small), np.empty_like(big)


def matmul_small():
    for _ in range(200):
        A @ B


def matmul_big():
    for _ in range(5):
        C @ C


def prange_small():
    for _ in range(2000):
        scale_add(small, out_s)


def prange_big():
    for _ in range(20):
        scale_add(big, out_b)


def mixed():  # a prange loop, then a matmul: a user's own training loop
    for _ in range(200):
        scale_add(small, out_s)
        A @ B


cases = {"numpy (256x784)@(784x256) x200": matmul_small,
         "numpy (1024x1024)@(1024x1024) x5": matmul_big,
         "numba prange 100k elements x2000": prange_small,
         "numba prange 4M elements x20": prange_big,
         "prange 100k then matmul 256x784x256, x200": mixed}
for f in cases.values():
    f()
env = {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_THREADING_LAYER")
       if k in os.environ}
print(tag + json.dumps({"keys": list(cases), "env": env}), flush=True)
for line in sys.stdin:
    key = line.strip()
    if key == "quit":
        break
    t0 = time.perf_counter()
    cases[key]()
    print(tag + repr(time.perf_counter() - t0), flush=True)
"""


USER_MODES = {"plain": "without nn", "import": "after import nn",
              "fit": "after import nn + fit"}


def run_user_code(repeats=7, combo="default", out=sys.stdout, log=sys.stderr):
    """Median ms of each user-code case per mode, all modes interleaved."""
    children = {}
    try:
        for mode in USER_MODES:
            children[mode] = _Child([mode, _TAG], COMBOS[combo],
                                    cmd=[sys.executable, "-c", USER_SCRIPT])
        times = _interleave(children, repeats, ("none",), log, "user code ")
    finally:
        for ch in children.values():
            ch.close()
    print(f"CPU: {cpu_model()}. The user's own code in a fresh process, ms (medians of "
          f"{repeats} interleaved runs, quiet ones where 3 or more were; ~: fewer); "
          f"library environment: {combo!r}.", file=out)
    print(file=out)
    print("| user code | " + " | ".join(USER_MODES.values())
          + " | import/without | fit/without |", file=out)
    print("| --- | ---: | ---: | ---: | ---: | ---: |", file=out)
    med = {m: {k.rsplit("|", 1)[0]: _median(v) for k, v in t.items()}
           for m, t in times.items()}
    for k in med["plain"]:
        m = {mode: 1e3 * med[mode][k][0] for mode in USER_MODES}
        cells = [f"{m[mode]:.1f}" + ("" if med[mode][k][1] else "~") for mode in USER_MODES]
        print(f"| {k} | " + " | ".join(cells) + f" | {m['import'] / m['plain']:.2f} | "
              f"{m['fit'] / m['plain']:.2f} |", file=out)
    return med


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--matrix", action="store_true")
    p.add_argument("--user-code", action="store_true")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="all cores: the splits of this many threads are timed")
    p.add_argument("--only-threads", type=int, nargs="+",
                   help="time only these thread counts (default: 1 and --threads)")
    p.add_argument("--combos", nargs="+", default=DEFAULT_COMBOS, choices=list(COMBOS))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--batches", type=int, nargs="+", default=list(MATRIX_BATCHES))
    p.add_argument("--loads", nargs="+", default=["none"], choices=LOADS,
                   help="'one core' also times every setting beside a busy loop")
    p.add_argument("--user-combos", nargs="+", default=["default", "mkl"],
                   choices=list(COMBOS), help="environments of --user-code")
    p.add_argument("--max-wait", type=float, default=5.0,
                   help="seconds to wait for a quiet machine before each epoch")
    p.add_argument("--json", help="also write the raw epoch times here")
    args = p.parse_args(argv)
    if args.worker:
        return _worker(json.loads(args.worker))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the children too
    t0 = time.perf_counter()
    if args.matrix:
        def dump(res):
            if args.json:
                with open(args.json, "w") as f:
                    json.dump({"rows": args.rows, "repeats": args.repeats, "cpu": cpu_model(),
                               "loads": args.loads, "results": res}, f)

        res = run_matrix(args.combos, args.rows, args.repeats, args.threads, args.models,
                         args.batches, args.loads, args.max_wait, on_repeat=dump,
                         thread_counts=args.only_threads)
        dump(res)
        print_matrix(res, args.rows, args.repeats, args.loads)
    if args.user_code:
        for combo in args.user_combos:
            run_user_code(repeats=args.repeats, combo=combo)
            print()
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
