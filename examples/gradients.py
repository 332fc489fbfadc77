"""Vanishing gradients made visible: a deep sigmoid net against He-initialized ReLU.

The notes' lesson: in a deep network with sigmoid units (derivative at most 1/4) the
gradient shrinks by a factor at every layer on its way back, so the first layers barely
learn. ReLU with He initialization (variance 2/n_in) keeps the signal's scale from layer
to layer. Both nets here have the same depth and widths and train on the embedded
digits; ``History.grad_norms`` gives each Dense layer's weight-gradient norm per epoch.

Run:  python examples/gradients.py [--depth 10] [--epochs 3]
"""
import argparse
import math
import sys

import nn


def train(activation, init, depth, epochs, X, y):
    widths = [X.shape[1]] + [32] * depth
    layers = [nn.Dense(a, b, activation=activation, init=init)
              for a, b in zip(widths[:-1], widths[1:])]
    layers.append(nn.Dense(widths[-1], 10))
    history = nn.Sequential(layers, seed=0).fit(
        X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr=0.05), epochs=epochs,
        batch_size=32, verbose=0)
    return [history.grad_norms[i][-1] for i in sorted(history.grad_norms)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=10, help="hidden layers (default 10)")
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args(argv)
    data = nn.datasets.load_digits()
    X = nn.data.Standardizer().fit(data.X).transform(data.X)
    results = {}
    print(f"weight-gradient norm of each Dense layer after {args.epochs} epochs "
          f"(layer 1 is next to the input)")
    for name, act, init in (("sigmoid, Xavier init", "sigmoid", "xavier"),
                            ("ReLU, He init", "relu", "he")):
        norms = train(act, init, args.depth, args.epochs, X, data.y)
        results[name] = norms
        print(f"\n{name}:")
        for k, g in enumerate(norms, 1):
            bar = "#" * max(0, int(2 * (math.log10(g) + 7)))  # log scale: 2 per decade
            print(f"  layer {k:2d}  {g:10.3e}  {bar}")
        print(f"  first / last layer: {norms[0] / norms[-1]:.1e}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
