"""Side by side with PyTorch on the same work, in one process, interleaved.

    python -m asv_benchmarks.compare [--batches 32 64 256 1024] [--threads 1 2]
                                     [--repeat 7] [--rows 4096]
                                     [--sections training kernels threads compile]

Training: one epoch of ``--rows`` MNIST-shaped float32 rows through the public API
(``Sequential.fit`` with ``nn.Adam``), against PyTorch's ``torch.optim.Adam`` in its
default form and with ``fused=True``, same model, same batch size, same thread count
(``nn.set_num_threads`` and ``torch.set_num_threads``). Two models: the 784-256-256-10
ReLU MLP, and the same with ``Dense(use_bias=False) -> BatchNorm -> ReLU ->
Dropout(keep_prob=0.8)`` hidden layers. Each repeat runs one epoch of every contender
in turn, so a slow moment of the shared machine hits all of them; the figures are
medians. "vs best" is our samples/s over the faster PyTorch variant's.

"GEMM limit" is the samples/s the step's matrix products alone would allow at the
machine's SGEMM rate: a step costs FLOPS_PER_SAMPLE = 2 * (784*256 + 256*256 + 256*10)
* 3 - 2 * 784*256 floating-point operations per sample (forward, dW and dX, with no dX
for the first layer: 1.21 MFLOP), and the rate is the best of repeated (1024 x 784) @
(784 x 256) SGEMMs through our BLAS (``kernels.blas``) at the same thread count, in the
same run. "of limit" is our training step's fraction of it.

Kernels: BatchNorm forward+backward and dropout forward against PyTorch's, and the
Adam update's bandwidth as a fraction of a NumPy copy's. Threads: an epoch with
``nn.set_num_threads(n)`` against the best of every split of n cores between Numba and
BLAS. Compile: import plus the first step of the MLP in a fresh process, with Numba's
cache empty and warm. These come from the asv suite's measurements in ``benchmarks/``.
"""
import argparse
import os
import platform
import sys
import timeit

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # the asv suite's "benchmarks" package

from benchmarks.common import MLP_WIDTHS as WIDTHS  # noqa: E402
from benchmarks.common import build_mlp, mnist_like, torch_epoch, torch_mlp  # noqa: E402

MODELS = ("mlp", "mlp+bn+dropout")
KEEP_PROB = 0.8
LR = 1e-3


def our_model(kind, seed=0):
    if kind == "mlp":
        return build_mlp(seed=seed)
    return build_mlp(seed=seed, batch_norm=True, keep_prob=KEEP_PROB)


def our_epoch(kind, X, y, batch):
    import nn
    model, opt, loss = our_model(kind), nn.Adam(lr=LR), nn.SoftmaxCrossEntropy()
    return lambda: model.fit(X, y, loss=loss, optimizer=opt, epochs=1, batch_size=batch)


def their_epoch(torch, kind, X, y, batch, fused):
    """One epoch of the PyTorch twin of ``our_model(kind)`` with torch.optim.Adam."""
    bn_dropout = kind != "mlp"
    model = torch_mlp(torch, batch_norm=bn_dropout,
                      keep_prob=KEEP_PROB if bn_dropout else 1.0)
    opt = torch.optim.Adam(model.parameters(), lr=LR, fused=fused)
    return torch_epoch(torch, model, opt, X, y, batch)


FLOPS_PER_SAMPLE = sum(6 * a * b for a, b in zip(WIDTHS[:-1], WIDTHS[1:])) \
    - 2 * WIDTHS[0] * WIDTHS[1]


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


def medians(contenders, repeat):
    """Median seconds of each no-argument function, run in turn ``repeat`` times."""
    for fn in contenders.values():
        fn()  # compile or load the cache, allocate, warm up: never timed
        fn()
    times = {k: [] for k in contenders}
    for _ in range(repeat):
        for k, fn in contenders.items():
            times[k].append(timeit.timeit(fn, number=1))
    return {k: float(np.median(v)) for k, v in times.items()}


def machine():
    import numba
    import kernels
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import torch
        tv = torch.__version__
    except ImportError:
        tv = "not installed"
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, NumPy "
            f"{np.__version__}, Numba {numba.__version__}, BLAS {kernels.blas.BACKEND}; "
            f"PyTorch {tv}")


def training_table(batches, threads_list, repeat, rows):
    import nn
    import torch
    X, y = mnist_like(rows)
    print("| model | threads | batch | ours samples/s | torch Adam | torch fused Adam "
          "| vs best | GEMM limit | of limit |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", flush=True)
    results = []
    for threads in threads_list:
        nn.set_num_threads(threads)
        torch.set_num_threads(threads)
        for kind in MODELS:
            for batch in batches:
                t = medians({"ours": our_epoch(kind, X, y, batch),
                             "torch": their_epoch(torch, kind, X, y, batch, False),
                             "fused": their_epoch(torch, kind, X, y, batch, True)}, repeat)
                ours, default, fused = (rows / t[k] for k in ("ours", "torch", "fused"))
                limit = sgemm_rate() / FLOPS_PER_SAMPLE
                ratio = ours / max(default, fused)
                results.append((kind, threads, batch, ratio, ours / limit))
                print(f"| {kind} | {threads} | {batch} | {ours:,.0f} | {default:,.0f} | "
                      f"{fused:,.0f} | {ratio:.2f}x | {limit:,.0f} | "
                      f"{ours / limit:.0%} |", flush=True)
    return results


def kernels_table(threads_list):
    from benchmarks.bench_batchnorm import BatchNormFwdBwd
    from benchmarks.bench_dropout import SHAPE, DropoutForward
    from benchmarks.bench_optim import adam_bandwidth_fraction
    print()
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


SECTIONS = ("training", "kernels", "threads", "compile")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[32, 64, 256, 1024])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = p.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("compare: PyTorch is not installed (pip install torch==2.13.0).")
    print(machine())
    print()
    if "training" in args.sections:
        training_table(args.batches, args.threads, args.repeat, args.rows)
    if "kernels" in args.sections:
        kernels_table(args.threads)
    if "threads" in args.sections:
        threads_table(args.threads)
    if "compile" in args.sections:
        compile_table()


if __name__ == "__main__":
    main()
