"""The optimizer updates' figures: time and bandwidth of each update, Adam's fraction of
copy bandwidth, and the ratio to torch.optim.Adam(fused=True), float32.

    python asv_benchmarks/bench_optim_report.py [--sizes 1000000 10000000] [--threads 1 2]
                                                [--repeat 7]

Every figure is a median of ``--repeat`` runs in this process (benchmarks/bench_optim.py
holds the measurements, shared with the asv suite).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchmarks.bench_optim import (  # noqa: E402
    ARRAYS, adam_bandwidth_fraction, adam_speedup_vs_torch, median_time, update_buffers,
    update_call,
)
from benchmarks.common import set_threads  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()

    print(f"{'update':>8} {'params':>11} {'threads':>7} {'ms/step':>8} {'GB/s':>6}")
    for threads in args.threads:
        set_threads(threads)
        for size in args.sizes:
            for update in ARRAYS:
                t = median_time(update_call(update, update_buffers(update, size)), args.repeat)
                print(f"{update:>8} {size:>11,} {threads:>7} {t * 1e3:>8.2f} "
                      f"{ARRAYS[update] * 4 * size / t / 1e9:>6.1f}", flush=True)
    print()
    print(f"{'params':>11} {'threads':>7} {'adam GB/s':>9} {'copy GB/s':>9} "
          f"{'fraction':>8} {'torch fused / ours':>18}")
    for threads in args.threads:
        for size in args.sizes:
            frac, bw_adam, bw_copy = adam_bandwidth_fraction(size, threads, args.repeat)
            try:
                ratio = f"{adam_speedup_vs_torch(size, threads, args.repeat)[0]:.2f}x"
            except NotImplementedError:
                ratio = "(no torch)"
            print(f"{size:>11,} {threads:>7} {bw_adam:>9.1f} {bw_copy:>9.1f} {frac:>8.2f} "
                  f"{ratio:>18}", flush=True)


if __name__ == "__main__":
    main()
