"""Side by side with PyTorch: one SGD epoch of the 784-256-256-10 ReLU MLP, float32.

    python asv_benchmarks/compare_torch.py [--batches 32 64 256 1024] [--threads 1 2]

Prints samples/s of both and their ratio (medians of repeated runs in this process).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchmarks.bench_training import speedup_vs_torch  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[32, 64, 256, 1024])
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()
    print(f"{'threads':>7} {'batch':>6} {'ours samples/s':>15} {'torch samples/s':>16} "
          f"{'speedup':>8}")
    for threads in args.threads:
        for batch in args.batches:
            ratio, ours, theirs = speedup_vs_torch(batch, "float32", threads, args.repeat)
            print(f"{threads:>7} {batch:>6} {ours:>15,.0f} {theirs:>16,.0f} {ratio:>7.2f}x",
                  flush=True)


if __name__ == "__main__":
    main()
