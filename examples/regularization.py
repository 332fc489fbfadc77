"""Overfitting, then L2 and dropout, on the embedded digits (or MNIST files).

The notes' regularization lesson on a small real problem: a big network (64-256-256-10,
ReLU) trained on few rows for many epochs fits its training rows perfectly and does
worse on the dev set. The same network, the same initial weights and the same shuffling,
with L2 (``fit(l2=...)``) and with inverted dropout (``nn.Dropout(keep_prob)`` after each
hidden layer), trains to a lower training accuracy and a smaller train-dev gap.

Run:  python examples/regularization.py [--epochs 150] [--train-rows 200]
      [--data MNIST_FOLDER]
"""
import argparse
import sys

import numpy as np

import nn


def load(data_folder, train_rows, seed):
    if data_folder:
        ds = nn.datasets.load_mnist(data_folder, "train")
    else:
        ds = nn.datasets.load_digits()
    (Xtr, ytr), (Xdev, ydev), _ = nn.data.split(ds.X, ds.y, ratios=(0.6, 0.2, 0.2),
                                                stratify=True, seed=seed)
    Xtr, ytr = Xtr[:train_rows], ytr[:train_rows]
    Xdev, ydev = Xdev[:2000], ydev[:2000]
    scaler = nn.data.Standardizer().fit(Xtr)
    return scaler.transform(Xtr), ytr, scaler.transform(Xdev), ydev


def build(n_in, n_classes, hidden, keep_prob, seed):
    layers = []
    width = n_in
    for h in hidden:
        layers.append(nn.Dense(width, h, activation="relu"))
        if keep_prob < 1.0:
            layers.append(nn.Dropout(keep_prob))
        width = h
    layers.append(nn.Dense(width, n_classes))
    return nn.Sequential(layers, seed=seed)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--train-rows", type=int, default=100)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--l2", type=float, default=0.7)
    p.add_argument("--keep-prob", type=float, default=0.5)
    p.add_argument("--data", default=None, help="folder of MNIST-format IDX files")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    Xtr, ytr, Xdev, ydev = load(args.data, args.train_rows, args.seed)
    n_classes = int(max(ytr.max(), ydev.max())) + 1
    runs = [("no regularization", 1.0, 0.0),
            (f"L2 lambda={args.l2:g}", 1.0, args.l2),
            (f"dropout keep_prob={args.keep_prob:g}", args.keep_prob, 0.0)]
    print(f"{Xtr.shape[0]} training rows, {Xdev.shape[0]} dev rows, network "
          f"{Xtr.shape[1]}-{'-'.join(map(str, args.hidden))}-{n_classes}, "
          f"{args.epochs} epochs")
    print(f"{'model':<24} {'train acc':>9} {'dev acc':>9} {'gap':>7}")
    results = {}
    for name, keep_prob, l2 in runs:
        model = build(Xtr.shape[1], n_classes, args.hidden, keep_prob, args.seed)
        model.fit(Xtr, ytr, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr=args.lr),
                  epochs=args.epochs, batch_size=32, l2=l2, seed=args.seed)
        train = model.evaluate(Xtr, ytr)["accuracy"]
        dev = model.evaluate(Xdev, ydev)["accuracy"]
        results[name] = (train, dev)
        print(f"{name:<24} {train:>9.4f} {dev:>9.4f} {train - dev:>7.4f}", flush=True)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
