"""Overfitting, then L2 and dropout, on the embedded digits (or MNIST files).

The notes' regularization lesson on a small real problem: a network much bigger than its
data (64-128-128-10, ReLU, about 26,000 weights) trained on 80 rows (about 8 per class) fits
every training row and does clearly worse on the dev set. The same network, with the same
initial weights and the same shuffling, is then trained with L2 (``fit(l2=...)``) and
with inverted dropout (``nn.Dropout``): both still fit the training rows and both raise
dev accuracy, so the train-dev gap shrinks.

Dropout is applied as in the original dropout paper (Srivastava et al., 2014): keep_prob
0.8 on the inputs (an ``nn.Dropout`` before the first Dense) and 0.5 after each hidden
layer; ``--input-keep-prob 1`` drops the input layer's dropout. Those two values are the
paper's, not tuned here. The other defaults (width, rows, epochs, lambda) were chosen so
that the gap is large and both remedies work over many splits, not on one seed: over
``--seed 0..9`` (a new split, initialization and shuffling each) the unregularized gap
averages 18 points, L2 narrows it by 3.8 points on average (0.3 to 7.2) and dropout by
4.1 (1.1 to 8.1), dev accuracy rising by the same amounts. Most of the gap is lack of
data, which no regularizer recovers.

Run:  python examples/regularization.py [--epochs 200] [--train-rows 80] [--seed 0]
      [--l2 0.7] [--keep-prob 0.5] [--input-keep-prob 0.8] [--data MNIST_FOLDER]
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


def build(n_in, n_classes, hidden, keep_prob, input_keep_prob, seed):
    layers = []
    if input_keep_prob < 1.0:
        layers.append(nn.Dropout(input_keep_prob))
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
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--train-rows", type=int, default=80)
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--l2", type=float, default=0.7)
    p.add_argument("--keep-prob", type=float, default=0.5,
                   help="dropout keep_prob after each hidden layer")
    p.add_argument("--input-keep-prob", type=float, default=0.8,
                   help="dropout keep_prob on the inputs (1: no input dropout)")
    p.add_argument("--data", default=None, help="folder of MNIST-format IDX files")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    Xtr, ytr, Xdev, ydev = load(args.data, args.train_rows, args.seed)
    n_classes = int(max(ytr.max(), ydev.max())) + 1
    if args.input_keep_prob < 1.0:
        dropout_name = f"dropout keep {args.input_keep_prob:g} in, {args.keep_prob:g} hidden"
    else:
        dropout_name = f"dropout keep_prob={args.keep_prob:g}"
    runs = [("no regularization", 1.0, 1.0, 0.0),
            (f"L2 lambda={args.l2:g}", 1.0, 1.0, args.l2),
            (dropout_name, args.keep_prob, args.input_keep_prob, 0.0)]
    print(f"{Xtr.shape[0]} training rows, {Xdev.shape[0]} dev rows, network "
          f"{Xtr.shape[1]}-{'-'.join(map(str, args.hidden))}-{n_classes}, "
          f"{args.epochs} epochs")
    print(f"{'model':<32} {'train acc':>9} {'dev acc':>9} {'gap':>7}")
    results = {}
    for name, keep_prob, input_keep_prob, l2 in runs:
        model = build(Xtr.shape[1], n_classes, args.hidden, keep_prob, input_keep_prob,
                      args.seed)
        model.fit(Xtr, ytr, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr=args.lr),
                  epochs=args.epochs, batch_size=args.batch_size, l2=l2, seed=args.seed)
        train = model.evaluate(Xtr, ytr)["accuracy"]
        dev = model.evaluate(Xdev, ydev)["accuracy"]
        results[name] = (train, dev)
        print(f"{name:<32} {train:>9.4f} {dev:>9.4f} {train - dev:>7.4f}", flush=True)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
