"""Side by side with PyTorch and JAX on the same work, each contender in its own process.

    python -m asv_benchmarks.compare [--batches 32 64 256 1024] [--threads 1 2]
                                     [--rows 8192] [--rounds 3] [--epochs-per-process 3]
                                     [--contenders ours torch torch-fused jax
                                                   ours-bf16 torch-bf16 torch-fused-bf16]
                                     [--ours-blas default mkl openblas]
                                     [--sections training kernels threads compile]
                                     [--max-busy 0.25] [--retries 1] [--wait-quiet 10]
                                     [--markdown PATH] [--json PATH]

Training (``--sections training``): one epoch of ``--rows`` MNIST-shaped float32 rows
(``benchmarks.common.mnist_like``) per timing, through

- "ours": the public API, ``Sequential.fit`` with ``nn.Adam``, once with the library's
  default BLAS ("ours (default)") and once with each backend forced through
  ``NUMBA_NN_BLAS=mkl`` / ``openblas`` in the process's environment ("ours (mkl)",
  "ours (openblas)"; a backend that fails to import is skipped, with a note);
- "torch": PyTorch with ``torch.optim.Adam`` in its default form, and "torch-fused" with
  ``fused=True`` (``benchmarks.common.torch_mlp`` / ``torch_epoch``);
- "jax": JAX with ``optax.adam``, one ``jax.jit``-compiled step per batch (batch gather,
  forward, gradient and update), the parameters a pytree (``benchmarks.common.jax_mlp``
  / ``jax_train_step`` / ``jax_epoch``).

bfloat16 mixed precision (opt-in: name them in ``--contenders``):

- "ours-bf16" ("ours bf16"): ``Sequential(..., precision="bf16")``, the same fit, every
  Dense GEMM in bf16 with float32 sums (``kernels.gemm_bf16``), the library's default
  BLAS for the rest; skipped where ``kernels.BF16_BACKEND`` is "none";
- "torch-bf16" and "torch-fused-bf16" ("torch autocast bf16", "torch fused autocast
  bf16"): the PyTorch epoch with the forward and the loss under
  ``torch.autocast("cpu", dtype=torch.bfloat16)`` (backward outside it, as PyTorch's
  documentation has it), float32 parameters, default or fused Adam.

Their table has two more columns: the best bf16 peer and "ours bf16 / best bf16 peer",
and "ours bf16 / ours fp32" (over "ours (default)").

Same model in all of them, same batch size, same thread count, Adam's defaults (lr 1e-3).
Two models: the 784-256-256-10 ReLU MLP ("mlp"), and the same with
``Dense(no bias) -> BatchNorm -> ReLU -> Dropout(keep 0.8)`` hidden layers
("mlp+bn+dropout"; BatchNorm in training mode, batch statistics, running statistics
updated; in JAX the dropout key is split every step). He-initialized weights, zero
biases, softmax cross-entropy on integer labels.

Processes. Two OpenMP runtimes in one process (Numba's and BLAS's beside PyTorch's)
distort multi-thread figures: in the earlier one-process version PyTorch's 2-thread
figures fell 2-3x. So every measurement runs in a fresh ``python -m
asv_benchmarks.compare --worker ...`` process started with ``subprocess`` (fork+exec: a
new interpreter, nothing inherited but the environment), which sets its thread count,
builds the model, trains ``--warmup`` epochs untimed (compilation, caches, first-touch
allocation), then times ``--epochs-per-process`` epochs one by one and prints the
median's samples/s as JSON on stdout. The PyTorch and JAX workers load neither Numba nor
our BLAS (``NUMBA_NN_BENCH_PEERS_ONLY=1``, see ``benchmarks/common.py``). Start-up and
warm-up are never timed.

Rounds. For each of ``--rounds`` rounds, for each thread count, model and batch size,
every contender runs once, back to back, in a fresh process (the contenders' order is
rotated each round), so a slow moment of a shared machine hits all the contenders of a
cell; the table shows each contender's median over the rounds.

Contention. Each worker also reports, over its timed part, its own CPU time / wall
time (the cores it kept busy: a check of its thread count) and the contention: the
share of the n cores it needs that other processes took (from /proc/stat: the cores
they kept busy, less the cores - n that an n-thread run leaves free, over n; so a
1-thread run on 2 cores is not disturbed by one other busy core). Above ``--max-busy`` (default 0.25) the run is made
again, up to ``--retries`` (1) times, and the least disturbed kept; before each run the
parent waits up to ``--wait-quiet`` (10) seconds for half a second below it. A figure
with a round still above it carries a "*"; each table ends with the largest spread over
rounds and the median and maximum contention.

Threads (``--threads``, default 1 and all cores, ``os.cpu_count()``; counts above it are
skipped). Every worker gets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``OPENBLAS_NUM_THREADS`` = n in its environment, then: ours ``nn.set_num_threads(n)``
(Numba and BLAS); PyTorch ``torch.set_num_threads(n)``; JAX, before it is imported,
``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"`` for
one thread (``=true``, ``=n`` for n), the flags the JAX issue tracker gives (jax-ml/jax
#743, #1539), and ``NPROC=n``. The ``NPROC`` matters: with jaxlib 0.10.2 the XLA flags
alone left a jitted step using both cores (CPU time / wall time 1.9 on this 2-core
machine), while ``NPROC=1``, which sizes the PJRT CPU client's thread pool (like a CPU
affinity mask would, jax-ml/jax #1539), brought it to 1.0.

"best fp32 peer" is the fastest of torch, torch fused and JAX in that cell; "ours /
best" is ours (default) over it. "GEMM limit" is the samples/s the step's matrix
products alone would allow at the machine's SGEMM rate: a step costs
FLOPS_PER_SAMPLE = 2 * (784*256 + 256*256 + 256*10) * 3 - 2 * 784*256 floating-point
operations per sample (forward, dW and dX, with no dX for the first layer: 1.21 MFLOP),
and the rate is the best of repeated (1024 x 784) @ (784 x 256) SGEMMs through our
default BLAS (``kernels.blas``), measured in a worker process of its own per thread
count and round (best over the rounds). "of limit" is ours (default)'s fraction of it.

The first lines printed name the CPU (``/proc/cpuinfo``'s model name, core count), the
Python, NumPy, Numba, PyTorch, JAX and optax versions, and the BLAS library each ours
row loaded (probed in a process of its own). A contender whose package is missing
(PyTorch, or JAX/optax) is skipped with a note; ours alone works. Progress goes to
stderr, the report to stdout (and with ``--markdown PATH`` to that file, ``--json
PATH`` writes every round's figures).

Kernels, threads and compile (``--sections``) are unchanged from the one-process version
and still run in this (the parent) process: BatchNorm forward+backward and dropout
forward against PyTorch's (both libraries loaded here), the Adam update's bandwidth as a
fraction of a NumPy copy's; an epoch with ``nn.set_num_threads(n)`` against the best of
every split of n cores between Numba and BLAS; import plus the first step of the MLP in
a fresh process (``bench_compile``), with Numba's cache empty and warm.

Worker mode (internal; ``--worker probe|train|sgemm``) prints one line
``COMPARE_RESULT {json}`` on stdout; everything else the worker writes goes to stderr.
``NUMBA_NN_COMPARE_HIDE=torch,jax`` makes those modules unimportable in workers (the
tests use it to simulate a missing package).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
import timeit

import numpy as np

try:
    import resource
except ImportError:  # not on Windows: CpuMeter reports None there
    resource = None

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # the asv suite's "benchmarks" package

MLP_WIDTHS = (784, 256, 256, 10)   # benchmarks.common.MLP_WIDTHS (not imported here:
WIDTHS = MLP_WIDTHS                # importing common loads nn, see worker_env)
MODELS = ("mlp", "mlp+bn+dropout")
KEEP_PROB = 0.8
LR = 1e-3
SECTIONS = ("training", "kernels", "threads", "compile")
CONTENDERS = ("ours", "torch", "torch-fused", "jax", "ours-bf16", "torch-bf16",
              "torch-fused-bf16")
#: ``--contenders``' default: the float32 ones (bfloat16 is opt-in).
DEFAULT_CONTENDERS = ("ours", "torch", "torch-fused", "jax")
OUR_BLAS = ("default", "mkl", "openblas")
PEERS = ("torch", "torch-fused", "jax")
BF16_PEERS = ("torch-bf16", "torch-fused-bf16")
LABELS = {"torch": "torch", "torch-fused": "torch fused", "jax": "jax",
          "ours-bf16": "ours bf16", "torch-bf16": "torch autocast bf16",
          "torch-fused-bf16": "torch fused autocast bf16"}
TORCH = ("torch", "torch-fused", "torch-bf16", "torch-fused-bf16")
RESULT_PREFIX = "COMPARE_RESULT "
HIDE_ENV = "NUMBA_NN_COMPARE_HIDE"
PEERS_ONLY_ENV = "NUMBA_NN_BENCH_PEERS_ONLY"   # benchmarks.common.PEERS_ONLY_ENV

FLOPS_PER_SAMPLE = sum(6 * a * b for a, b in zip(WIDTHS[:-1], WIDTHS[1:])) \
    - 2 * WIDTHS[0] * WIDTHS[1]


# --------------------------------------------------------------------------- contenders

def our_model(kind, seed=0):
    from benchmarks.common import build_mlp
    if kind == "mlp":
        return build_mlp(seed=seed)
    return build_mlp(seed=seed, batch_norm=True, keep_prob=KEEP_PROB)


def our_epoch(kind, X, y, batch, precision="fp32"):
    import nn
    model, opt, loss = our_model(kind), nn.Adam(lr=LR), nn.SoftmaxCrossEntropy()
    if precision != "fp32":
        model = nn.Sequential.from_config({**model.config(), "precision": precision})
    return lambda: model.fit(X, y, loss=loss, optimizer=opt, epochs=1, batch_size=batch,
                             verbose=0)


def their_epoch(torch, kind, X, y, batch, fused, autocast=False):
    """One epoch of the PyTorch twin of ``our_model(kind)`` with torch.optim.Adam;
    with ``autocast``, forward and loss under ``torch.autocast("cpu", bfloat16)``."""
    from benchmarks.common import torch_epoch, torch_mlp
    bn_dropout = kind != "mlp"
    model = torch_mlp(torch, batch_norm=bn_dropout,
                      keep_prob=KEEP_PROB if bn_dropout else 1.0)
    opt = torch.optim.Adam(model.parameters(), lr=LR, fused=fused)
    return torch_epoch(torch, model, opt, X, y, batch, autocast=autocast)


def jax_epoch_fn(jax, optax, kind, X, y, batch):
    """One epoch of the JAX twin of ``our_model(kind)`` with optax.adam."""
    from benchmarks.common import jax_epoch
    bn_dropout = kind != "mlp"
    return jax_epoch(jax, optax, X, y, batch, lr=LR, batch_norm=bn_dropout,
                     keep_prob=KEEP_PROB if bn_dropout else 1.0)


def sgemm_rate(repeat=20, seed=0):
    """Best FLOP/s of a (1024 x 784) @ (784 x 256) float32 GEMM through kernels.blas."""
    from kernels.blas import gemm
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((1024, 784)).astype(np.float32)
    B = rng.standard_normal((784, 256)).astype(np.float32)
    C = np.empty((1024, 256), np.float32)
    run = lambda: gemm(A, B, C, False, False, 1.0, 0.0)  # noqa: E731
    run()
    return 2 * 1024 * 784 * 256 / min(timeit.repeat(run, number=5, repeat=repeat)) * 5


# --------------------------------------------------------------------------- worker side

class _Skip(Exception):
    """The contender cannot run here (a package or BLAS backend is missing)."""


def _hide_modules():
    """Make the modules named in NUMBA_NN_COMPARE_HIDE unimportable (tests)."""
    hidden = {m.strip() for m in os.environ.get(HIDE_ENV, "").split(",") if m.strip()}
    if not hidden:
        return

    class Hider:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in hidden:
                raise ModuleNotFoundError(f"No module named {name!r} ({HIDE_ENV})",
                                          name=name)
            return None

    sys.meta_path.insert(0, Hider())


def _import(contender):
    """The contender's modules, or _Skip with the reason."""
    try:
        if contender in ("ours", "ours-bf16"):
            import kernels
            import nn
            if contender == "ours-bf16" and kernels.BF16_BACKEND == "none":
                raise _Skip("no bf16 GEMM on this CPU (kernels.BF16_BACKEND is 'none')")
            return kernels, nn
        if contender in TORCH:
            import torch
            return (torch,)
        import jax
        import optax
        return jax, optax
    except ImportError as exc:
        raise _Skip(f"{type(exc).__name__}: {exc}") from None


def _versions(mods):
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for m in mods:
        out[m.__name__] = getattr(m, "__version__", "?")
    if "kernels" in out:
        import numba
        out.pop("kernels")
        out.pop("nn", None)
        out["numba"] = numba.__version__
    return out


def _set_threads(contender, mods, threads):
    if contender in ("ours", "ours-bf16"):
        import numba
        if threads > numba.config.NUMBA_NUM_THREADS:
            raise _Skip(f"{threads} threads > NUMBA_NUM_THREADS "
                        f"{numba.config.NUMBA_NUM_THREADS}")
        mods[1].set_num_threads(threads)
    elif contender in TORCH:
        mods[0].set_num_threads(threads)
    # JAX: from the environment the parent set before the import (worker_env)


class CpuMeter:
    """How busy the machine was from creation to ``stop(threads)``, from /proc/stat.

    ``stop`` returns ``{"cpu_per_wall": this process's CPU time / wall time (the cores
    it kept busy: a check of its thread count), "others_cores": the cores other
    processes kept busy on average (all CPUs' busy time, steal included, minus this
    process's), "contention": the share of the ``threads`` cores a run needs that the
    others took, max(0, others_cores + threads - cores) / threads}``; a 1-thread run on
    2 cores is not disturbed by one other busy core. Values are None without /proc/stat.
    """

    def __init__(self):
        self.start = self._sample()

    @staticmethod
    def _sample():
        if resource is None:
            return None
        try:
            with open("/proc/stat") as fh:
                vals = [int(v) for v in fh.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        busy = (sum(vals) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), busy, ru.ru_utime + ru.ru_stime

    def stop(self, threads):
        end = self._sample()
        if self.start is None or end is None or end[0] <= self.start[0]:
            return {"cpu_per_wall": None, "others_cores": None, "contention": None}
        wall = end[0] - self.start[0]
        own = (end[2] - self.start[2]) / wall
        others = max(0.0, (end[1] - self.start[1]) / wall - own)
        cores = os.cpu_count() or 1
        return {"cpu_per_wall": own, "others_cores": others,
                "contention": max(0.0, others + threads - cores) / threads}


def _probe(args):
    mods = _import(args.contender)
    out = {"versions": _versions(mods)}
    if args.contender in ("ours", "ours-bf16"):
        out["blas_backend"] = mods[0].BLAS_BACKEND
        out["blas_library"] = mods[0].blas.LIBRARY_PATH
        out["bf16_backend"] = mods[0].BF16_BACKEND
    return out


def _train(args):
    from benchmarks.common import mnist_like
    mods = _import(args.contender)
    _set_threads(args.contender, mods, args.threads[0])
    X, y = mnist_like(args.rows, seed=args.seed)
    batch, kind = args.batches[0], args.model
    if args.contender in ("ours", "ours-bf16"):
        epoch = our_epoch(kind, X, y, batch,
                          "bf16" if args.contender == "ours-bf16" else "fp32")
    elif args.contender in TORCH:
        epoch = their_epoch(mods[0], kind, X, y, batch, "fused" in args.contender,
                            autocast=args.contender.endswith("-bf16"))
    else:
        epoch = jax_epoch_fn(mods[0], mods[1], kind, X, y, batch)
    for _ in range(args.warmup):
        epoch()
    times = []
    meter = CpuMeter()
    for _ in range(args.epochs_per_process):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    out = {"model": kind, "batch": batch, "threads": args.threads[0], "rows": args.rows,
           "epoch_seconds": times, "samples_per_s": args.rows / med}
    out.update(meter.stop(args.threads[0]))
    if args.contender in ("ours", "ours-bf16"):
        out["blas_backend"] = mods[0].BLAS_BACKEND
        out["bf16_backend"] = mods[0].BF16_BACKEND
    return out


def _sgemm(args):
    mods = _import("ours")
    _set_threads("ours", mods, args.threads[0])
    meter = CpuMeter()
    out = {"threads": args.threads[0], "flops": sgemm_rate(),
           "blas_backend": mods[0].BLAS_BACKEND}
    out.update(meter.stop(args.threads[0]))
    return out


def worker(args):
    """Run one measurement; print ``COMPARE_RESULT {json}`` as the last stdout line."""
    real_stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)                     # anything else written to stdout goes to stderr
    sys.stdout = sys.stderr
    _hide_modules()
    out = {"worker": args.worker, "contender": args.contender, "blas": args.blas,
           "pid": os.getpid()}
    try:
        out.update({"probe": _probe, "train": _train, "sgemm": _sgemm}[args.worker](args))
        out["status"] = "ok"
    except _Skip as exc:
        out.update(status="skipped", reason=str(exc))
    except Exception as exc:  # reported, not raised: the parent notes it and goes on
        import traceback
        traceback.print_exc()
        out.update(status="error", reason=f"{type(exc).__name__}: {exc}")
    real_stdout.write(RESULT_PREFIX + json.dumps(out) + "\n")
    real_stdout.flush()


# --------------------------------------------------------------------------- parent side

def worker_env(contender, blas="default", threads=None):
    """The environment of a worker process: the BLAS choice, the thread counts."""
    env = dict(os.environ)
    env.pop("NUMBA_NN_BLAS", None)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in
                                                  env.get("PYTHONPATH", "").split(os.pathsep)
                                                  if p])
    if contender in ("ours", "ours-bf16"):
        env.pop(PEERS_ONLY_ENV, None)
        if blas != "default":
            env["NUMBA_NN_BLAS"] = blas
    else:
        env[PEERS_ONLY_ENV] = "1"
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(threads)
        if contender == "jax":
            multi = "true" if threads > 1 else "false"
            env["XLA_FLAGS"] = (f"--xla_cpu_multi_thread_eigen={multi} "
                                f"intra_op_parallelism_threads={threads}")
            env["NPROC"] = str(threads)
    return env


def run_worker(kind, contender, blas="default", threads=None, model=None, batch=None,
               rows=8192, warmup=2, epochs=3, timeout=600, seed=0):
    """Start one worker process and return its result dict (status ok, skipped or error)."""
    cmd = [sys.executable, "-m", "asv_benchmarks.compare", "--worker", kind,
           "--contender", contender, "--blas", blas, "--rows", str(rows),
           "--warmup", str(warmup), "--epochs-per-process", str(epochs),
           "--seed", str(seed)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    if model is not None:
        cmd += ["--model", model]
    if batch is not None:
        cmd += ["--batches", str(batch)]
    base = {"worker": kind, "contender": contender, "blas": blas}
    try:
        proc = subprocess.run(cmd, env=worker_env(contender, blas, threads), cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(base, status="error", reason=f"timed out after {timeout} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
    return dict(base, status="error", reason=f"exit status {proc.returncode}: {tail}")


def cpu_model():
    """(model name, os.cpu_count(), AVX-512: True, False or None where unknown)."""
    from benchmarks.machine import cpu_fields, cpu_name, has_avx512
    fields = cpu_fields()
    return cpu_name(fields), os.cpu_count(), has_avx512(fields)


def config_label(contender, blas):
    return f"ours ({blas})" if contender == "ours" else LABELS[contender]


def _is_ours(contender):
    return contender in ("ours", "ours-bf16")


def progress(msg):
    print(msg, file=sys.stderr, flush=True)


def probe_all(contenders, our_blas, timeout):
    """Probe each configuration once in its own process: {label: probe result}."""
    configs = [("ours", b) for b in our_blas] if "ours" in contenders else []
    configs += [(c, "default") for c in contenders if c != "ours"]   # ours-bf16: default
    probes = {}
    for contender, blas in configs:
        res = run_worker("probe", contender, blas, timeout=timeout)
        probes[config_label(contender, blas)] = dict(res, contender=contender, blas=blas)
        progress(f"probe {config_label(contender, blas)}: {res['status']}"
                 + (f" ({res.get('reason')})" if res["status"] != "ok" else ""))
    return probes


def header_lines(probes):
    name, cores, avx512 = cpu_model()
    lines = [f"CPU: {name}, {cores} cores"
             + ("" if avx512 is None else f" (AVX-512: {'yes' if avx512 else 'no'})")
             + f"; {platform.system()} {platform.release()}"]
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for res in probes.values():
        if res["status"] == "ok":
            versions.update(res.get("versions", {}))
    order = ("python", "numpy", "numba", "torch", "jax", "optax")
    names = {"python": "Python", "numpy": "NumPy", "numba": "Numba", "torch": "PyTorch",
             "jax": "JAX", "optax": "optax"}
    lines.append("Versions: " + ", ".join(f"{names[k]} {versions[k]}" for k in order
                                          if k in versions))
    blas = []
    for label, res in probes.items():
        if not _is_ours(res["contender"]):
            continue
        if res["status"] == "ok":
            blas.append(f"{label}: {res['blas_backend']} "
                        f"({os.path.basename(res['blas_library'])})"
                        + (f", bf16 GEMM {res['bf16_backend']}"
                           if res["contender"] == "ours-bf16" else ""))
        else:
            blas.append(f"{label}: skipped ({res.get('reason')})")
    if blas:
        lines.append("BLAS: " + "; ".join(blas))
    for label, res in probes.items():
        if not _is_ours(res["contender"]) and res["status"] != "ok":
            lines.append(f"Note: {label} skipped ({res['status']}: {res.get('reason')})")
    return lines


def wait_quiet(threads, max_busy, seconds):
    """Wait, up to ``seconds``, until other processes would take at most ``max_busy``
    of the cores a ``threads``-thread run needs (``CpuMeter``, over half a second)."""
    end = time.monotonic() + seconds
    while seconds > 0:
        meter = CpuMeter()
        time.sleep(0.5)
        contention = meter.stop(threads)["contention"]
        if contention is None or contention <= max_busy or time.monotonic() >= end:
            return contention
    return None


def measure(args, kind, contender, blas, threads, **options):
    """One worker; run again (up to ``--retries`` times) while other processes took more
    than ``--max-busy`` of its cores during its timing, and keep the least disturbed
    run. Before each run, wait up to ``--wait-quiet`` seconds for a quiet machine."""
    best, attempt = None, 0
    for attempt in range(1, args.retries + 2):
        wait_quiet(threads, args.max_busy, args.wait_quiet)
        res = run_worker(kind, contender, blas, threads=threads, rows=args.rows,
                         warmup=args.warmup, epochs=args.epochs_per_process,
                         timeout=args.timeout, seed=args.seed, **options)
        if res["status"] != "ok":
            if best is None:
                return res
            break
        load = res.get("contention") or 0.0
        if best is None or load < (best.get("contention") or 0.0):
            best = res
        if load <= args.max_busy:
            break
    best["attempts"] = attempt
    return best


def busy_mark(contention, max_busy):
    return "*" if contention is not None and contention > max_busy else ""


def run_training(args, probes, threads_list):
    """All rounds of the training measurements: {"cells": ..., "sgemm": ...}."""
    configs = [(r["contender"], r["blas"]) for r in probes.values() if r["status"] == "ok"]
    results = {config_label(c, b): {} for c, b in configs}
    sgemm = {t: [] for t in threads_list}
    notes = []
    has_ours = any(c == "ours" for c, _ in configs)
    for rnd in range(args.rounds):
        for t in threads_list:
            if has_ours and "default" in args.ours_blas:
                res = measure(args, "sgemm", "ours", "default", t)
                if res["status"] == "ok":
                    sgemm[t].append((res["flops"], res.get("contention")))
                    progress(f"round {rnd + 1}/{args.rounds} threads {t} SGEMM: "
                             f"{res['flops'] / 1e9:.0f} GFLOP/s, contention "
                             f"{pct(res.get('contention'))}")
                else:
                    notes.append(f"sgemm, {t} threads, round {rnd + 1}: {res.get('reason')}")
            for kind in MODELS if args.models is None else args.models:
                for batch in args.batches:
                    shift = rnd % max(len(configs), 1)
                    for contender, blas in configs[shift:] + configs[:shift]:
                        label = config_label(contender, blas)
                        res = measure(args, "train", contender, blas, t, model=kind,
                                      batch=batch)
                        key = (kind, t, batch)
                        if res["status"] == "ok":
                            results[label].setdefault(key, []).append(
                                (res["samples_per_s"], res.get("contention")))
                            msg = (f"{res['samples_per_s']:,.0f} samples/s, cpu/wall "
                                   f"{fmt2(res.get('cpu_per_wall'))}, contention "
                                   f"{pct(res.get('contention'))}, "
                                   f"{res['attempts']} attempt(s)")
                        else:
                            notes.append(f"{label}, {kind}, {t} threads, batch {batch}, "
                                         f"round {rnd + 1}: {res['status']}: "
                                         f"{res.get('reason')}")
                            msg = res["status"]
                        progress(f"round {rnd + 1}/{args.rounds} threads {t} {kind} "
                                 f"batch {batch} {label}: {msg}")
    return results, sgemm, notes


def fmt(x):
    return "n/a" if x is None else f"{x:,.0f}"


def fmt2(x):
    return "n/a" if x is None else f"{x:.2f}"


def pct(x):
    return "n/a" if x is None else f"{x:.0%}"


def gemm_limit(runs, max_busy):
    """Samples/s at the best SGEMM rate of the undisturbed runs (of all, if none was),
    and whether it comes from a disturbed run."""
    if not runs:
        return None, False
    calm = [f for f, c in runs if c is None or c <= max_busy]
    return max(calm or [f for f, _ in runs]) / FLOPS_PER_SAMPLE, not calm


def training_tables(args, results, sgemm, threads_list):
    """The markdown tables (a list of lines) and the summary rows (dicts)."""
    labels = [lab for lab in (config_label("ours", b) for b in OUR_BLAS) if lab in results]
    peers = [LABELS[p] for p in PEERS if LABELS[p] in results]
    ours16 = LABELS["ours-bf16"] if LABELS["ours-bf16"] in results else None
    peers16 = [LABELS[p] for p in BF16_PEERS if LABELS[p] in results]
    bf16_cols = ours16 is not None or bool(peers16)
    labels += [ours16] if ours16 else []
    peers += peers16
    lines, rows_out = [], []
    for kind in MODELS if args.models is None else args.models:
        for t in threads_list:
            limit, limit_busy = gemm_limit(sgemm.get(t), args.max_busy)
            lines += ["", f"### {kind}, {t} thread{'s' if t > 1 else ''} "
                      f"(samples/s, median of {args.rounds} rounds)", ""]
            cols = ["batch"] + labels + peers + ["best fp32 peer", "ours / best peer",
                                                 "GEMM limit", "ours of limit"]
            if bf16_cols:
                cols += ["best bf16 peer", "ours bf16 / best bf16 peer",
                         "ours bf16 / ours fp32"]
            lines.append("| " + " | ".join(cols) + " |")
            lines.append("| " + " | ".join("---:" for _ in cols) + " |")
            spread, loads, busy = (0.0, None), [], False
            for batch in args.batches:
                med, mark = {}, {}
                for lab in labels + peers:
                    runs = results[lab].get((kind, t, batch)) or []
                    vals = [v for v, _ in runs]
                    loads += [ld for _, ld in runs if ld is not None]
                    med[lab] = float(np.median(vals)) if vals else None
                    mark[lab] = "*" if any(busy_mark(ld, args.max_busy)
                                           for _, ld in runs) else ""
                    busy = busy or bool(mark[lab])
                    if len(vals) > 1:
                        s = max(vals) / min(vals) - 1
                        if s > spread[0]:
                            spread = (s, f"{lab}, batch {batch}")
                have = {p: med[p] for p in peers if med[p] is not None
                        and p not in peers16}
                best = max(have, key=have.get) if have else None
                ours = med.get("ours (default)")
                ratio = ours / have[best] if ours and best else None
                frac = ours / limit if ours and limit else None
                cells = [str(batch)] + [fmt(med[lab]) + mark[lab] for lab in labels + peers]
                cells += [f"{fmt(have[best])} ({best})" if best else "n/a",
                          f"{ratio:.2f}x" if ratio else "n/a",
                          fmt(limit) + ("*" if limit_busy else ""),
                          f"{frac:.0%}" if frac else "n/a"]
                row = {"model": kind, "threads": t, "batch": batch,
                       "samples_per_s": med, "best_peer": best,
                       "ours_over_best_peer": ratio, "gemm_limit": limit,
                       "ours_of_limit": frac}
                if bf16_cols:
                    have16 = {p: med[p] for p in peers16 if med[p] is not None}
                    best16 = max(have16, key=have16.get) if have16 else None
                    o16 = med.get(ours16) if ours16 else None
                    r16 = o16 / have16[best16] if o16 and best16 else None
                    over32 = o16 / ours if o16 and ours else None
                    cells += [f"{fmt(have16[best16])} ({best16})" if best16 else "n/a",
                              f"{r16:.2f}x" if r16 else "n/a",
                              f"{over32:.2f}x" if over32 else "n/a"]
                    row.update(best_bf16_peer=best16, ours_bf16_over_best_bf16_peer=r16,
                               ours_bf16_over_ours_fp32=over32)
                lines.append("| " + " | ".join(cells) + " |")
                rows_out.append(row)
            notes = []
            if spread[1]:
                notes.append(f"Largest spread over rounds (max/min - 1): {spread[0]:.0%} "
                             f"({spread[1]}).")
            if loads:
                notes.append(f"Contention (the share of a run's cores other processes "
                             f"took): median {np.median(loads):.0%}, max {max(loads):.0%}.")
            if busy or limit_busy:
                notes.append(f"* at least one round had contention above "
                             f"{args.max_busy:.0%} (after {args.retries} retries).")
            if notes:
                lines += [""] + [" ".join(notes)]
    return lines, rows_out


def training_section(args, threads_list, out_lines, report):
    progress("training: probing the contenders (one process each)")
    probes = probe_all(args.contenders, args.ours_blas, args.timeout)
    head = header_lines(probes)
    for ln in head:
        print(ln, flush=True)
    out_lines += head
    report["probes"] = probes
    report["header"] = head
    if not any(r["status"] == "ok" for r in probes.values()):
        print("Nothing to run: every contender was skipped.")
        return
    results, sgemm, notes = run_training(args, probes, threads_list)
    lines, rows = training_tables(args, results, sgemm, threads_list)
    lines += ["", f"{args.rows} rows per epoch; each figure: per round, a fresh process, "
                  f"{args.warmup} warm-up epochs, median of {args.epochs_per_process} "
                  f"timed epochs; median over {args.rounds} rounds."]
    if notes:
        lines += [""] + [f"Note: {n}" for n in notes]
    for ln in lines:
        print(ln, flush=True)
    out_lines += lines
    report["rows"] = rows
    report["rounds"] = {
        lab: {f"{k[0]}|{k[1]}|{k[2]}": [{"samples_per_s": v, "contention": ld}
                                        for v, ld in runs]
              for k, runs in cells.items()}
        for lab, cells in results.items()}
    report["sgemm"] = {str(t): [{"flops": f, "contention": c} for f, c in runs]
                       for t, runs in sgemm.items()}
    report["notes"] = notes


# --------------------------------------------------------------- in-process sections

def kernels_table(threads_list):
    from benchmarks.bench_batchnorm import BatchNormFwdBwd
    from benchmarks.bench_dropout import SHAPE, DropoutForward
    from benchmarks.bench_optim import adam_bandwidth_fraction
    print()
    print("Kernels (measured in this process, PyTorch loaded beside our kernels):")
    print("| kernel | shape | threads | figure |")
    print("| --- | --- | ---: | ---: |", flush=True)
    for threads in threads_list:
        bn = BatchNormFwdBwd()
        for shape in [(256, 1024), (4096, 1024)]:
            bn.setup(shape, threads)
            print(f"| BatchNorm fwd+bwd vs PyTorch | {shape} | {threads} | "
                  f"{bn.track_speedup_vs_torch(shape, threads):.2f}x |", flush=True)
        do = DropoutForward()
        do.setup(threads)
        print(f"| Dropout fwd vs PyTorch | {SHAPE} | {threads} | "
              f"{do.track_speedup_vs_torch(threads):.1f}x |", flush=True)
        frac = adam_bandwidth_fraction(10_000_000, threads)[0]
        print(f"| Adam update, fraction of copy bandwidth | (10000000,) | {threads} | "
              f"{frac:.2f} |", flush=True)


def threads_table(threads_list):
    from benchmarks.bench_threads import api_over_best
    print()
    print("Threads (measured in this process):")
    print("| batch | threads | API's setting over the best split | every setting, ms |")
    print("| ---: | ---: | ---: | --- |", flush=True)
    for threads in threads_list:
        for batch in (32, 256):
            ratio, med = api_over_best(batch, threads)
            detail = ", ".join(f"{k} {v * 1e3:.0f}" for k, v in med.items())
            print(f"| {batch} | {threads} | {ratio:.2f} | {detail} |", flush=True)


def compile_table():
    from benchmarks.bench_compile import cold_and_warm
    cold, warm = cold_and_warm()
    print()
    print("| first training step in a fresh process (import included) | seconds |")
    print("| --- | ---: |")
    print(f"| empty Numba cache (compiles everything it uses) | {cold:.1f} |")
    print(f"| warm Numba cache | {warm:.2f} |", flush=True)


# --------------------------------------------------------------------------- main

def parser():
    p = argparse.ArgumentParser(prog="python -m asv_benchmarks.compare",
                                description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[32, 64, 256, 1024])
    p.add_argument("--threads", type=int, nargs="+", default=None,
                   help="thread counts (default: 1 and os.cpu_count())")
    p.add_argument("--rows", type=int, default=8192)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs-per-process", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2, help="untimed epochs per process")
    p.add_argument("--models", nargs="+", choices=MODELS, default=None)
    p.add_argument("--contenders", nargs="+", choices=CONTENDERS,
                   default=list(DEFAULT_CONTENDERS),
                   help="default: the float32 ones; add ours-bf16 torch-bf16 "
                        "torch-fused-bf16 for bfloat16 mixed precision")
    p.add_argument("--ours-blas", nargs="+", choices=OUR_BLAS, default=list(OUR_BLAS))
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--markdown", metavar="PATH", help="also write the report there")
    p.add_argument("--json", metavar="PATH", help="write every figure there, as JSON")
    p.add_argument("--timeout", type=int, default=600, help="seconds per worker process")
    p.add_argument("--max-busy", type=float, default=0.25,
                   help="share of a run's cores other processes may take during its "
                        "timing before it is run again (default 0.25)")
    p.add_argument("--wait-quiet", type=float, default=10, metavar="SECONDS",
                   help="before each run, wait up to this long for the contention to "
                        "fall to --max-busy (default 10; 0: do not wait)")
    p.add_argument("--retries", type=int, default=1,
                   help="runs again of a timing disturbed by other processes (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, help=argparse.SUPPRESS)  # old flag: ignored
    # internal: one measurement in this process
    p.add_argument("--worker", choices=("probe", "train", "sgemm"), help=argparse.SUPPRESS)
    p.add_argument("--contender", choices=CONTENDERS, default="ours", help=argparse.SUPPRESS)
    p.add_argument("--blas", choices=OUR_BLAS, default="default", help=argparse.SUPPRESS)
    p.add_argument("--model", choices=MODELS, default="mlp", help=argparse.SUPPRESS)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if args.worker:
        args.threads = args.threads or [1]
        return worker(args)
    cores = os.cpu_count() or 1
    threads_list = args.threads or sorted({1, cores})
    too_many = [t for t in threads_list if t > cores or t < 1]
    threads_list = [t for t in threads_list if t not in too_many]
    if too_many:
        progress(f"skipping thread counts {too_many}: this machine has {cores} cores")
    out_lines, report = [], {"args": {k: v for k, v in vars(args).items()
                                      if k not in ("worker", "contender", "blas", "model")}}
    if "training" in args.sections:
        training_section(args, threads_list, out_lines, report)
    else:
        name, n, _ = cpu_model()
        print(f"CPU: {name}, {n} cores")
    if "kernels" in args.sections or "threads" in args.sections:
        import importlib.util
        have_torch = importlib.util.find_spec("torch") is not None
        if "kernels" in args.sections:
            if have_torch:
                kernels_table(threads_list)
            else:
                print("\nNote: kernels section skipped: PyTorch is not installed.")
        if "threads" in args.sections:
            threads_table(threads_list)
    if "compile" in args.sections:
        compile_table()
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write("\n".join(out_lines) + "\n")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return report


if __name__ == "__main__":
    main()
