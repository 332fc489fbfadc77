"""Hyperparameter search on the embedded digits: random search, then successive halving.

The notes' third week: sample at random rather than on a grid, each hyperparameter on
its own scale (the learning rate and the hidden width log-uniformly, Adam's beta1 on the
scale of 1/(1-beta1)), and train many models at once, one per core. Then successive
halving: every configuration gets one epoch, the best third goes on to three, the best
third of those to nine, resumed from their checkpoints rather than restarted.

On a cluster, pass ``executor=distributed.Client(...).get_executor()`` to either search;
the results are the same as here, for the same seed.

    python examples/tuning.py [--trials 27] [--epochs 9] [--seed 0]

(The ``if __name__ == "__main__"`` guard matters: the local workers are started with
``spawn`` and import this file.)
"""
import argparse
import sys

import nn
from nn import tuning

SPACE = {
    "lr": tuning.LogUniform(1e-4, 1),                 # as many trials per decade
    "hidden": tuning.IntRange(16, 256, log=True),     # as many in 16..31 as in 128..255
    "beta1": tuning.OneMinusLogUniform(0.8, 0.999),   # 5 to 1000 steps averaged
    "batch_size": tuning.Choice([32, 64, 128]),
}


def make_objective(epochs, seed=0):
    data = nn.datasets.load_digits()
    (Xtr, ytr), (Xdev, ydev) = nn.data.split(data.X, data.y, ratios=(0.8, 0.2),
                                             stratify=True, seed=seed)
    # A picklable objective that carries the data: each worker trains
    # 64 -> hidden -> 10 with Adam and reports dev accuracy and loss.
    return tuning.mlp_objective(Xtr, ytr, Xdev, ydev, epochs=epochs, optimizer="adam")


def main(trials=27, epochs=9, seed=0, file=sys.stdout, workdir=None):
    """Run both searches; print their tables; return both results."""
    objective = make_objective(epochs, seed)
    print(f"random search: {trials} trials of {epochs} epochs, one worker per core",
          file=file)
    found = tuning.random_search(objective, SPACE, trials, seed=seed, verbose=0)
    print(found, file=file)
    print(f"best: {found.best.summary(found.metric)}\n", file=file)

    halving = tuning.successive_halving(objective, SPACE, trials, min_epochs=1, eta=3,
                                        max_epochs=epochs, seed=seed, workdir=workdir,
                                        verbose=0)
    print(halving, file=file)
    print(f"best: {halving.best.summary(halving.metric)}", file=file)
    print(f"successive halving trained {halving.epochs_trained} epochs; random search "
          f"{trials * epochs}", file=file)
    return found, halving


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=27)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.trials, args.epochs, args.seed)
