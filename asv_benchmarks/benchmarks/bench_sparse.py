"""Sparse inputs: a text-like CSR problem, ours against scikit-learn and PyTorch.

The workload (``make_text_like``): 100,000 rows and 100,000 features, about 93 stored
values per row (Poisson(100) draws of Zipf-distributed features, repeats summed), the
feature frequencies Zipf-like (rank r drawn with weight 1/(r + 2.7)), a quarter of each
row's draws from its class's own shuffled Zipf ranking (so the 20 classes are
learnable), values log(1 + count) scaled to unit row norm, float32, int32 indices, seed
0. The model: 100000-256-20, ReLU, softmax cross-entropy, Adam (lr 1e-3, betas 0.9 and
0.999, eps 1e-8, no weight decay), batch 256.

asv (``TimeSparseTraining``, ``TimeSparseKernels``): steps of ``Sequential.fit`` on the
CSR matrix, and the first layer's kernels on one batch, at 1 and 2 threads.

The comparison, each contender in a fresh process per round (interleaved rounds,
medians over them)::

    python -m asv_benchmarks.benchmarks.bench_sparse [--threads 1 2] [--rounds 3]
        [--steps 60] [--slow-steps 20] [--sklearn-steps 8] [--contenders ...]

- "ours": ``nn.mlp([100000, 256, 20]).fit(X[rows], y[rows], optimizer=nn.Adam(1e-3),
  batch_size=256, epochs=1)`` on the CSR slice (shuffled; the fit's validation, batch
  gathers and end-of-fit evaluation are timed with it).
- "sklearn": ``MLPClassifier(hidden_layer_sizes=(256,), solver="adam",
  batch_size=256, learning_rate_init=1e-3, alpha=0)``, ``partial_fit`` (one epoch) on
  the same CSR slice, after a first untimed ``partial_fit`` that initializes it.
- "torch-*": the same network in PyTorch, its first layer a dense (100000, 256)
  parameter fed either by ``torch.sparse.mm`` on a CSR tensor ("csr") or by
  ``F.embedding_bag(mode="sum", per_sample_weights=...)`` ("bag"), both giving a dense
  gradient; ``torch.optim.Adam`` default ("adam") or ``fused=True`` ("fused"), i.e.
  dense Adam, the semantics ours has. The batches' tensors are built before the timing
  (in PyTorch's favour).

Each process trains a few untimed steps first (compilation, first touch), then times
one block of steps; samples/s = rows / seconds. ``--steps`` sets the block for ours and
PyTorch's fused variants, ``--slow-steps`` for PyTorch's default Adam, and
``--sklearn-steps`` for scikit-learn (a smaller block, stated in the table: about 0.3 s
a step). "epoch" is the time 100,000 rows would take at that rate. The first lines name
the CPU, the core count and the BLAS libraries. Before each run the driver waits up to
``--wait-quiet`` seconds for other processes to use under a quarter of a core; each
result records the cores other processes kept busy during it (/proc/stat), and the
table shows the median: on a shared machine a 2-thread figure with other processes
near a core is a 1-core figure, and PyTorch's and OpenBLAS's thread pools lose far more
than that when a core is taken from them.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from .machine import cpu_model

N_ROWS, N_FEATURES, NNZ_PER_ROW, N_CLASSES = 100_000, 100_000, 100, 20
HIDDEN, BATCH, LR = 256, 256, 1e-3
RESULT_PREFIX = "BENCH_SPARSE_RESULT "
CONTENDERS = ("ours", "torch-bag-fused", "torch-csr-fused", "torch-bag-adam",
              "torch-csr-adam", "sklearn")


def make_text_like(n_rows=N_ROWS, n_features=N_FEATURES, nnz_per_row=NNZ_PER_ROW,
                   n_classes=N_CLASSES, seed=0, dtype=np.float32):
    """(X, y): a text-like CSR matrix (see the module docstring) and int64 labels."""
    import scipy.sparse as sp
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_rows)
    ranks = np.arange(1, n_features + 1, dtype=np.float64)
    cdf = np.cumsum(1.0 / (ranks + 2.7))
    cdf /= cdf[-1]
    per_row = np.maximum(1, rng.poisson(nnz_per_row, n_rows))
    rows = np.repeat(np.arange(n_rows), per_row)
    features = np.searchsorted(cdf, rng.random(rows.shape[0]))
    topical = rng.random(rows.shape[0]) < 0.25
    class_order = np.stack([rng.permutation(n_features) for _ in range(n_classes)])
    features[topical] = class_order[y[rows[topical]],
                                    np.searchsorted(cdf, rng.random(int(topical.sum())))]
    X = sp.csr_matrix((np.ones(rows.shape[0]), (rows, features)),
                      shape=(n_rows, n_features))
    X.sum_duplicates()
    X.data = np.log1p(X.data)
    norms = np.sqrt(np.add.reduceat(X.data ** 2, X.indptr[:-1]))
    X.data /= np.repeat(norms, np.diff(X.indptr))
    return X.astype(dtype), y


# -- asv ---------------------------------------------------------------------------------

_DATA = {}


def _data():
    if "X" not in _DATA:
        _DATA["X"], _DATA["y"] = make_text_like()
    return _DATA["X"], _DATA["y"]


class TimeSparseTraining:
    """``fit`` over 40 batches of 256 rows of the text-like CSR data (one epoch of
    10,240 rows), Adam, float32."""

    params = [[1, 2]]
    param_names = ["threads"]
    timeout = 600
    STEPS = 40

    def setup(self, threads):
        import nn
        from .common import set_threads
        set_threads(threads)
        X, y = _data()
        n = self.STEPS * BATCH
        self.X, self.y = X[:n], y[:n]
        self.model = nn.mlp([N_FEATURES, HIDDEN, N_CLASSES], seed=0)
        self.optimizer = nn.Adam(lr=LR)
        self.model.fit(self.X[:2 * BATCH], self.y[:2 * BATCH], loss=nn.SoftmaxCrossEntropy(),
                       optimizer=self.optimizer, batch_size=BATCH, epochs=1, verbose=0)

    def time_fit_steps(self, threads):
        import nn
        self.model.fit(self.X, self.y, loss=nn.SoftmaxCrossEntropy(),
                       optimizer=self.optimizer, batch_size=BATCH, epochs=1, verbose=0)

    def time_predict(self, threads):
        self.model.predict(self.X)


class TimeSparseKernels:
    """The first layer's forward and backward on one batch of 256 rows (float32)."""

    params = [[1, 2]]
    param_names = ["threads"]

    def setup(self, threads):
        import kernels
        from nn import _sparse
        from .common import set_threads
        set_threads(threads)
        X, _ = _data()
        rng = np.random.default_rng(0)
        self.batches = _sparse.Batches(X, BATCH)
        self.xb = self.batches.take(rng.permutation(X.shape[0])[:BATCH].astype(np.int64))
        self.W = (rng.standard_normal((N_FEATURES, HIDDEN)) * 0.004).astype(np.float32)
        self.b = np.zeros(HIDDEN, np.float32)
        self.dW = np.zeros_like(self.W)
        self.Z, self.A, self.dZ = (np.empty((BATCH, HIDDEN), np.float32) for _ in range(3))
        self.dA = rng.standard_normal((BATCH, HIDDEN)).astype(np.float32)
        self.db = np.empty(HIDDEN, np.float32)
        self.scratch = np.empty((kernels.n_blocks(BATCH), HIDDEN))
        self.t = _sparse._Transpose(N_FEATURES, self.batches.capacity, np.float32)
        self.time_forward(threads)
        self.time_backward(threads)

    def time_forward(self, threads):
        import kernels
        xb = self.xb
        kernels.csr_dense_forward(xb.indptr, xb.indices, xb.data, self.W, self.b,
                                  kernels.ACT_RELU, self.Z, self.A, True)

    def time_backward(self, threads):
        import kernels
        xb, t = self.xb, self.t
        _, n = kernels.csr_dense_backward(
            xb.indptr, xb.indices, xb.data, self.W, self.Z, self.A, self.dA,
            kernels.ACT_RELU, 0.0, 0.0, self.dZ, self.dW, self.db, self.scratch, t.slot,
            t.stale, t.n_stale, t.features, t.col_ptr, t.col_rows, t.col_vals, True)
        t.features, t.stale, t.n_stale = t.stale, t.features, n


# -- workers -----------------------------------------------------------------------------

def _load(path):
    import scipy.sparse as sp
    with np.load(path) as f:
        X = sp.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
        return X, f["y"]


def _cpu_busy():
    return time.process_time()


def _machine_busy():
    """Seconds of CPU time all processes have used (/proc/stat; None elsewhere)."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _wait_quiet(max_wait, limit=0.25):
    """Wait up to ``max_wait`` seconds for half a second in which other processes keep
    under ``limit`` cores busy."""
    end = time.perf_counter() + max_wait
    while time.perf_counter() < end:
        before = _machine_busy()
        if before is None:
            return
        time.sleep(0.5)
        if (_machine_busy() - before) / 0.5 < limit:
            return


def _worker_ours(X, y, threads, steps, warm):
    import nn
    nn.set_num_threads(threads)
    model = nn.mlp([N_FEATURES, HIDDEN, N_CLASSES], seed=0)
    optimizer = nn.Adam(lr=LR)
    loss = nn.SoftmaxCrossEntropy()
    model.fit(X[:warm * BATCH], y[:warm * BATCH], loss=loss, optimizer=optimizer,
              batch_size=BATCH, epochs=1, verbose=0)
    lo = warm * BATCH
    Xt, yt = X[lo:lo + steps * BATCH], y[lo:lo + steps * BATCH]
    t0, c0 = time.perf_counter(), _cpu_busy()
    model.fit(Xt, yt, loss=loss, optimizer=optimizer, batch_size=BATCH, epochs=1,
              verbose=0)
    return time.perf_counter() - t0, _cpu_busy() - c0, {
        "blas": __import__("kernels").blas.LIBRARY_PATH}


def _worker_sklearn(X, y, threads, steps, warm):
    import warnings
    import threadpoolctl
    from sklearn.neural_network import MLPClassifier
    threadpoolctl.threadpool_limits(threads)
    clf = MLPClassifier(hidden_layer_sizes=(HIDDEN,), activation="relu", solver="adam",
                        batch_size=BATCH, learning_rate_init=LR, alpha=0.0,
                        beta_1=0.9, beta_2=0.999, epsilon=1e-8, shuffle=True,
                        random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.partial_fit(X[:warm * BATCH], y[:warm * BATCH], classes=np.arange(N_CLASSES))
        lo = warm * BATCH
        Xt, yt = X[lo:lo + steps * BATCH], y[lo:lo + steps * BATCH]
        t0, c0 = time.perf_counter(), _cpu_busy()
        clf.partial_fit(Xt, yt)
    blas = [f"{i['internal_api']} {i.get('version')}"
            for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    return time.perf_counter() - t0, _cpu_busy() - c0, {"blas": ", ".join(blas)}


def _worker_torch(X, y, threads, steps, warm, feed, fused):
    import warnings
    import torch
    import torch.nn.functional as F
    warnings.simplefilter("ignore")   # "sparse CSR support is in beta"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    W1 = torch.nn.Parameter(torch.randn(N_FEATURES, HIDDEN) * (2.0 / N_FEATURES) ** 0.5)
    b1 = torch.nn.Parameter(torch.zeros(HIDDEN))
    out = torch.nn.Linear(HIDDEN, N_CLASSES)
    params = [W1, b1, *out.parameters()]
    optimizer = torch.optim.Adam(params, lr=LR, betas=(0.9, 0.999), eps=1e-8,
                                 **({"fused": True} if fused else {}))
    rng = np.random.default_rng(0)

    def batches(lo, n_steps):
        order = lo + rng.permutation(n_steps * BATCH)
        made = []
        for s in range(n_steps):
            rows = order[s * BATCH:(s + 1) * BATCH]
            xb = X[rows]
            indptr = torch.from_numpy(xb.indptr.astype(np.int64))
            indices = torch.from_numpy(xb.indices.astype(np.int64))
            data = torch.from_numpy(xb.data)
            if feed == "csr":
                x = torch.sparse_csr_tensor(indptr, indices, data, size=xb.shape)
            else:
                x = (indices, indptr[:-1], data)
            made.append((x, torch.from_numpy(y[rows])))
        return made

    def step(x, target):
        if feed == "csr":
            h = torch.sparse.mm(x, W1)
        else:
            h = F.embedding_bag(x[0], W1, x[1], mode="sum", per_sample_weights=x[2])
        loss = F.cross_entropy(out(torch.relu(h + b1)), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for x, target in batches(0, warm):
        step(x, target)
    timed = batches(warm * BATCH, steps)
    t0, c0 = time.perf_counter(), _cpu_busy()
    for x, target in timed:
        step(x, target)
    return time.perf_counter() - t0, _cpu_busy() - c0, {
        "blas": f"torch {torch.__version__}, MKL {torch.backends.mkl.is_available()}"}


def worker(args):
    X, y = _load(args.data)
    busy0, t0 = _machine_busy(), time.perf_counter()
    c = args.worker
    if c == "ours":
        seconds, cpu, info = _worker_ours(X, y, args.threads, args.steps, args.warm)
    elif c == "sklearn":
        seconds, cpu, info = _worker_sklearn(X, y, args.threads, args.steps, args.warm)
    else:
        _, feed, opt = c.split("-")
        seconds, cpu, info = _worker_torch(X, y, args.threads, args.steps, args.warm, feed,
                                           opt == "fused")
    rows = args.steps * BATCH
    # The cores other processes kept busy meanwhile (over the whole worker: its own CPU
    # time is taken out as a whole, so this is a rough gauge of a disturbed run).
    others = None
    if busy0 is not None:
        wall = time.perf_counter() - t0
        others = max(0.0, (_machine_busy() - busy0 - time.process_time()) / wall)
    print(RESULT_PREFIX + json.dumps(dict(contender=c, threads=args.threads, rows=rows,
                                          seconds=seconds, cpu=cpu, others=others,
                                          samples_per_s=rows / seconds, **info)))


# -- driver ------------------------------------------------------------------------------

def _run(contender, threads, steps, data, warm, timeout=900):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "")
                                                  .split(os.pathsep) if p])
    cmd = [sys.executable, "-m", "asv_benchmarks.benchmarks.bench_sparse", "--worker",
           contender, "--threads", str(threads), "--steps", str(steps), "--data", data,
           "--warm", str(warm)]
    proc = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True,
                          timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise RuntimeError(f"{contender} failed: {proc.stderr[-2000:]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", choices=CONTENDERS)
    parser.add_argument("--data")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--slow-steps", type=int, default=20)
    parser.add_argument("--sklearn-steps", type=int, default=8)
    parser.add_argument("--warm", type=int, default=3)
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS),
                        choices=CONTENDERS)
    parser.add_argument("--wait-quiet", type=float, default=20.0,
                        help="seconds to wait, before each run, for other processes to "
                             "use under a quarter of a core")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.worker:
        args.threads = args.threads[0]
        return worker(args)

    import numba
    import scipy
    import sklearn
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; Python {sys.version.split()[0]}, "
          f"NumPy {np.__version__}, SciPy {scipy.__version__}, Numba {numba.__version__}, "
          f"scikit-learn {sklearn.__version__}", flush=True)
    X, y = make_text_like()
    print(f"data: {X.shape[0]} x {X.shape[1]} CSR float32, {X.nnz / X.shape[0]:.1f} "
          f"stored values per row, {N_CLASSES} classes; model {N_FEATURES}-{HIDDEN}-"
          f"{N_CLASSES} ReLU, Adam lr {LR}, batch {BATCH}", flush=True)
    steps = {c: args.sklearn_steps if c == "sklearn" else
             args.slow_steps if c.endswith("-adam") else args.steps
             for c in args.contenders}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "text_like.npz")
        np.savez(data, data=X.data, indices=X.indices, indptr=X.indptr,
                 shape=np.array(X.shape), y=y)
        for r in range(args.rounds):
            for threads in args.threads:
                order = args.contenders[r % len(args.contenders):] + \
                    args.contenders[:r % len(args.contenders)]
                for c in order:
                    _wait_quiet(args.wait_quiet)
                    res = _run(c, threads, steps[c], data, args.warm)
                    results.setdefault((c, threads), []).append(res)
                    print(f"round {r + 1} threads {threads} {c}: "
                          f"{res['samples_per_s']:.0f} samples/s (cpu/wall "
                          f"{res['cpu'] / res['seconds']:.2f}, other processes "
                          f"{res['others'] or 0:.2f} cores)", file=sys.stderr, flush=True)
    blas = {c: results[c, t][0].get("blas") for c, t in results}
    print("BLAS: " + "; ".join(f"{c}: {b}" for c, b in blas.items() if b))
    print()
    header = "| contender | threads | steps timed | samples/s (median) | epoch (100k rows) " \
             "| ours / this | other processes (cores, median) |"
    print(header)
    print("|" + "---|" * 7)
    table = []
    for threads in args.threads:
        ours = np.median([r["samples_per_s"] for r in results.get(("ours", threads), [])]
                         or [np.nan])
        for c in args.contenders:
            runs = results.get((c, threads))
            if not runs:
                continue
            rate = float(np.median([r["samples_per_s"] for r in runs]))
            table.append(dict(contender=c, threads=threads, steps=steps[c], rate=rate,
                              rounds=[r["samples_per_s"] for r in runs]))
            others = np.median([r["others"] or 0.0 for r in runs])
            print(f"| {c} | {threads} | {steps[c]} | {rate:,.0f} | {N_ROWS / rate:,.1f} s | "
                  f"{ours / rate:.2f}x | {others:.2f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(table, fh, indent=1)


if __name__ == "__main__":
    main()
