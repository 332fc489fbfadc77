"""``python -m nn``: train an MLP on the embedded digits (or MNIST-format files).

Shows progress per epoch (a bar in a terminal, lines otherwise), then the final train,
dev and test accuracy and the bias/variance diagnosis. ``--save`` writes the model
(with its standardizer) and a PNG of the training curves next to it.
"""
import argparse
import os
import sys
import time

import numpy as np


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m nn",
        description="Train a fully connected network on the embedded 8x8 digits (default) "
                    "or on MNIST-format IDX files, and print train, dev and test accuracy.")
    p.add_argument("--data", metavar="FOLDER", default=None,
                   help="folder with MNIST-format files (train-images-idx3-ubyte[.gz], "
                        "train-labels-idx1-ubyte[.gz], t10k-...); default: the embedded "
                        "digits, split 60/20/20")
    p.add_argument("--hidden", metavar="N", type=int, nargs="+", default=[128],
                   help="hidden layer sizes (default: 128)")
    p.add_argument("--activation", default="relu",
                   choices=["relu", "leaky_relu", "tanh", "sigmoid"],
                   help="hidden activation (default: relu)")
    p.add_argument("--epochs", type=int, default=30, help="epochs (default: 30)")
    p.add_argument("--batch-size", type=int, default=32, help="mini-batch size (default: 32)")
    p.add_argument("--lr", type=float, default=0.05,
                   help="learning rate of SGD (default: 0.05)")
    p.add_argument("--l2", type=float, default=0.0, help="L2 penalty lambda (default: 0)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="model dtype (default: float32)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the split, initialization and shuffling (default: 0)")
    p.add_argument("--threads", type=int, default=None,
                   help="Numba and BLAS threads (default: the library's choice)")
    p.add_argument("--base-error", type=float, default=0.0,
                   help="the best achievable error rate, for the diagnosis (default: 0)")
    p.add_argument("--save", metavar="MODEL.npz", default=None,
                   help="save the trained model there, and its training curves as a PNG "
                        "of the same name (needs matplotlib for the PNG)")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="write the training curves there (default: next to --save)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    return p


def load_splits(folder, seed):
    import nn
    if folder is None:
        d = nn.datasets.load_digits()
        return "digits (embedded, 8x8)", nn.data.split(d.X, d.y, ratios=(0.6, 0.2, 0.2),
                                                       stratify=True, seed=seed)
    train = nn.datasets.load_mnist(folder, kind="train")
    test = nn.datasets.load_mnist(folder, kind="test")
    tr, dev = nn.data.split(train.X, train.y, ratios=(5 / 6, 1 / 6), stratify=True, seed=seed)
    return f"MNIST-format files in {folder}", (tr, dev, (test.X, test.y))


def main(argv=None):
    args = build_parser().parse_args(argv)
    import nn
    if args.threads is not None:
        nn.set_num_threads(args.threads)
    name, ((Xtr, ytr), (Xdev, ydev), (Xte, yte)) = load_splits(args.data, args.seed)
    n_classes = int(max(ytr.max(), ydev.max(), yte.max())) + 1
    widths = [Xtr.shape[1], *args.hidden]
    layers = [nn.Dense(a, b, activation=args.activation,
                       init="he" if "relu" in args.activation else "xavier")
              for a, b in zip(widths[:-1], widths[1:])]
    layers.append(nn.Dense(widths[-1], n_classes))
    model = nn.Sequential(layers, dtype=np.dtype(args.dtype), seed=args.seed)
    model.standardizer = nn.data.Standardizer().fit(Xtr)  # training statistics only
    print(f"data: {name}: {len(ytr)} train, {len(ydev)} dev, {len(yte)} test rows, "
          f"{Xtr.shape[1]} features, {n_classes} classes", flush=True)
    print(f"model: {' -> '.join(map(str, widths + [n_classes]))} ({args.activation}), "
          f"SGD lr={args.lr}, batch {args.batch_size}, {args.epochs} epochs, {args.dtype}",
          flush=True)
    # Always progress: a bar in a terminal, one line per epoch when captured.
    verbose = 0 if args.quiet else (1 if sys.stderr.isatty() else 2)
    start = time.perf_counter()
    history = model.fit(Xtr, ytr, loss=nn.SoftmaxCrossEntropy(),
                        optimizer=nn.SGD(lr=args.lr), epochs=args.epochs,
                        batch_size=args.batch_size, l2=args.l2,
                        validation_data=(Xdev, ydev), seed=args.seed, verbose=verbose)
    seconds = time.perf_counter() - start
    acc = {}
    for label, X, y in (("train", Xtr, ytr), ("dev", Xdev, ydev), ("test", Xte, yte)):
        acc[label] = model.evaluate(X, y)["accuracy"]
        print(f"{label} accuracy: {acc[label]:.4f}")
    print(f"trained in {seconds:.2f} s ({len(ytr) * args.epochs / seconds:,.0f} samples/s)")
    print("diagnosis: " + str(nn.diagnose(1 - acc["train"], 1 - acc["dev"],
                                          base_error=args.base_error)))
    plot = args.plot
    if args.save:
        print(f"model saved to {nn.save(model, args.save)}")
        if plot is None:
            plot = os.path.splitext(args.save)[0] + ".png"
    if plot:
        try:
            print(f"training curves written to {history.plot(plot)}")
        except ImportError as exc:
            print(f"no training curves: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
