"""``python -m nn``: train an MLP on the embedded digits (or MNIST-format files).

Shows progress per epoch (a bar in a terminal, lines otherwise), then the final train,
dev and test accuracy and the bias/variance diagnosis. ``--save`` writes the model
(with its standardizer) and a PNG of the training curves next to it.

``python -m nn tune`` searches hyperparameters instead: random search (or successive
halving) over the learning rate, hidden width, Adam's beta1 and the batch size, in
worker processes, with a line per finished trial; it prints the table of trials and
writes a PNG of dev accuracy against the learning rate.

Every option is checked before any training: a bad value, an output folder that does
not exist or cannot be written, or a PNG asked for without matplotlib ends with the
usage and an error (exit code 2). A model that cannot be saved at the end is saved in
the current or the temporary folder instead, and the exit code is 1.
"""
import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m nn",
        description="Train a fully connected network on the embedded 8x8 digits (default) "
                    "or on MNIST-format IDX files, and print train, dev and test accuracy.",
        epilog="Hyperparameter search: python -m nn tune --help")
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
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="matrix products: fp32 (in the model's dtype) or bf16 (bfloat16 "
                        "products summed in float32, about 2x faster GEMMs on CPUs with "
                        "AVX512-BF16; needs --dtype float32) (default: fp32)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the split, initialization and shuffling (default: 0)")
    p.add_argument("--threads", type=int, default=None,
                   help="Numba and BLAS threads (default: the library's choice)")
    p.add_argument("--base-error", type=float, default=0.0,
                   help="the best achievable error rate, for the diagnosis (default: 0)")
    p.add_argument("--save", metavar="MODEL.safetensors", default=None,
                   help="save the trained model there, and its training curves as a PNG "
                        "of the same name (needs matplotlib for the PNG)")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="write the training curves there (default: next to --save)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    return p


def check_range(parser, option, value, low=None, high=None, low_open=False):
    """Exit with a usage error unless ``value`` is finite and in the range."""
    too_low = low is not None and (value <= low if low_open else value < low)
    if math.isfinite(value) and not too_low and (high is None or value <= high):
        return
    if high is None:
        need = f"{'>' if low_open else '>='} {low}"
    else:
        need = f"in {'(' if low_open else '['}{low}, {high}]"
    parser.error(f"{option} must be {need}; got {value}")


def check_threads(parser, option, value):
    import numba
    n = numba.config.NUMBA_NUM_THREADS
    if not 1 <= value <= n:
        parser.error(f"{option} must be in [1, {n}] (at most the {n} CPUs Numba may use); "
                     f"got {value}")


def check_data(parser, folder):
    if folder is not None and not os.path.isdir(folder):
        parser.error(f"--data must be a folder of MNIST-format files; got {folder!r}, "
                     f"{'not a folder' if os.path.exists(folder) else 'which does not exist'}")


def check_output(parser, option, path):
    """Exit with a usage error unless a file can be written at ``path`` (its folder exists
    and is writable): found now, not after the training."""
    from ._validation import check_output_path
    folder = os.path.dirname(os.path.abspath(path))
    try:
        check_output_path(option, path, where="python -m nn")
    except (ValueError, IsADirectoryError):
        parser.error(f"{option} must be a file name; got {path!r}"
                     f"{', a folder' if path else ''}")
    except FileNotFoundError:
        parser.error(f"{option} must be a file in an existing folder; got {path!r}, and "
                     f"{folder} is not a folder")
    except PermissionError as exc:
        parser.error(f"{option} must be a file in a writable folder; got {path!r}, and "
                     f"{folder} cannot be written ({exc.__cause__.strerror})")


def have_matplotlib():
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        return False
    return True


PLOT_EXTRA = 'matplotlib, which is not installed: pip install "numba-nn[plot]"'


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


def load_or_exit(parser, folder, seed):
    try:
        return load_splits(folder, seed)
    except (OSError, ValueError) as exc:
        parser.error(f"--data {folder}: {exc}")


def save_model(model, path):
    """Save ``model`` to ``path``, or else to a new file in the current folder or the
    temporary folder, saying where; returns whether ``path`` was written."""
    import nn
    try:
        print(f"model saved to {nn.save(model, path)}")
        return True
    except OSError as exc:
        print(f"error: cannot save the model to {path}: {exc}", file=sys.stderr)
    folders = [tempfile.gettempdir()]
    try:
        folders.insert(0, os.getcwd())
    except OSError:
        pass   # the current folder was deleted
    stem = os.path.splitext(os.path.basename(path))[0] or "model"
    for folder in folders:
        if folder == os.path.dirname(os.path.abspath(path)):
            continue
        try:
            # A new name: never overwrite a file the user has there.
            fd, rescue = tempfile.mkstemp(prefix=stem + "-", suffix=".safetensors", dir=folder)
            os.close(fd)
        except OSError as exc:
            print(f"error: cannot save the model in {folder} either: {exc}", file=sys.stderr)
            continue
        try:
            nn.save(model, rescue)
        except OSError as exc:
            os.unlink(rescue)
            print(f"error: cannot save the model in {folder} either: {exc}", file=sys.stderr)
            continue
        print(f"the model was saved to {rescue} instead", file=sys.stderr)
        return False
    print("error: the model was not saved", file=sys.stderr)
    return False


def write_plot(what, plot, path):
    """``plot(path)``; returns False (after saying why) if the file cannot be written."""
    try:
        print(f"{what} written to {plot(path)}")
        return True
    except OSError as exc:
        print(f"error: cannot write the {what} to {path}: {exc}", file=sys.stderr)
        return False


def build_tune_parser():
    p = argparse.ArgumentParser(
        prog="python -m nn tune",
        description="Search hyperparameters of a fully connected network (Adam) by random "
                    "search, or successive halving, on the embedded 8x8 digits (default) or "
                    "MNIST-format files: learning rate (log scale), hidden width (log "
                    "scale), beta1 (on the scale of 1/(1-beta1)) and batch size. Prints one "
                    "line per finished trial, the table of trials, and writes a PNG of dev "
                    "accuracy against the learning rate.")
    p.add_argument("--data", metavar="FOLDER", default=None,
                   help="folder with MNIST-format files; default: the embedded digits, split "
                        "60/20/20 (the test part is not used)")
    p.add_argument("--trials", type=int, default=20,
                   help="configurations to try (default: 20)")
    p.add_argument("--epochs", type=int, default=10,
                   help="epochs per trial; with --halving, the last rung's (default: 10)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: one per core; 0 runs the trials in "
                        "this process)")
    p.add_argument("--threads", type=int, default=1,
                   help="Numba and BLAS threads per trial (default: 1)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the split and of the search (default: 0)")
    p.add_argument("--lr", metavar=("LOW", "HIGH"), type=float, nargs=2, default=[1e-4, 1.0],
                   help="learning rate range, sampled on a log scale (default: 1e-4 1)")
    p.add_argument("--hidden", metavar=("LOW", "HIGH"), type=int, nargs=2, default=[16, 256],
                   help="hidden width range, sampled on a log scale (default: 16 256)")
    p.add_argument("--halving", action="store_true",
                   help="successive halving: start all trials with --min-epochs, keep the "
                        "best 1/--eta, resume them with --eta times the epochs, up to "
                        "--epochs")
    p.add_argument("--min-epochs", type=int, default=1,
                   help="first rung's epochs with --halving (default: 1)")
    p.add_argument("--eta", type=int, default=3,
                   help="budget growth and 1/fraction kept with --halving (default: 3)")
    png = p.add_mutually_exclusive_group()
    png.add_argument("--plot", metavar="PNG", default=None,
                     help="where to write dev accuracy against learning rate (default: "
                          "tune.png; needs matplotlib)")
    png.add_argument("--no-plot", action="store_true", help="write no PNG")
    p.add_argument("--quiet", action="store_true", help="no per-trial progress")
    return p


def tune_main(argv=None):
    """``python -m nn tune [options]``; returns the exit code (1 if every trial failed)."""
    parser = build_tune_parser()
    args = parser.parse_args(argv)
    check_data(parser, args.data)
    for name in ("trials", "epochs", "min_epochs"):
        check_range(parser, f"--{name.replace('_', '-')}", getattr(args, name), low=1)
    if args.workers is not None:
        check_range(parser, "--workers", args.workers, low=0)
    check_threads(parser, "--threads", args.threads)
    check_range(parser, "--seed", args.seed, low=0)
    check_range(parser, "--eta", args.eta, low=2)
    low, high = args.lr
    if not (math.isfinite(high) and 0 < low < high):
        parser.error(f"--lr must be two numbers LOW HIGH with 0 < LOW < HIGH; got {low} {high}")
    low, high = args.hidden
    if not 1 <= low <= high:
        parser.error(f"--hidden must be two sizes LOW HIGH with 1 <= LOW <= HIGH; got {low} "
                     f"{high}")
    if args.halving and args.min_epochs > args.epochs:
        parser.error(f"--min-epochs ({args.min_epochs}) must be <= --epochs ({args.epochs})")
    plot = None if args.no_plot else "tune.png" if args.plot is None else args.plot
    if plot is not None:
        check_output(parser, "--plot", plot)
        if not have_matplotlib():
            if args.plot is not None:
                parser.error(f"--plot needs {PLOT_EXTRA}")
            print(f"note: no PNG: it needs {PLOT_EXTRA} (--no-plot says none is wanted)",
                  file=sys.stderr)
            plot = None
    from nn import tuning
    name, ((Xtr, ytr), (Xdev, ydev), _) = load_or_exit(parser, args.data, args.seed)
    space = {"lr": tuning.LogUniform(*args.lr),
             "hidden": tuning.IntRange(*args.hidden, log=True),
             "beta1": tuning.OneMinusLogUniform(0.8, 0.999),
             "batch_size": tuning.Choice([16, 32, 64, 128])}
    objective = tuning.mlp_objective(Xtr, ytr, Xdev, ydev, epochs=args.epochs)
    executor = tuning.SerialExecutor() if args.workers == 0 else None
    workers = "this process" if args.workers == 0 else \
        f"{args.workers or tuning.executors._cpu_count()} worker processes"
    print(f"data: {name}: {len(ytr)} train, {len(ydev)} dev rows, {Xtr.shape[1]} features",
          flush=True)
    print("space: " + ", ".join(f"{k} ~ {v!r}" for k, v in space.items()), flush=True)
    how = (f"successive halving of {args.trials} configurations, {args.min_epochs} to "
           f"{args.epochs} epochs, eta {args.eta}" if args.halving
           else f"random search, {args.trials} trials of {args.epochs} epochs")
    print(f"{how}; Adam, {workers} x {args.threads} thread(s), seed {args.seed}", flush=True)
    verbose = 0 if args.quiet else (1 if sys.stderr.isatty() else 2)
    common = dict(executor=executor, seed=args.seed, n_workers=args.workers or None,
                  threads=args.threads, verbose=verbose)
    start = time.perf_counter()
    if args.halving:
        results = tuning.successive_halving(objective, space, args.trials,
                                            min_epochs=args.min_epochs,
                                            max_epochs=args.epochs, eta=args.eta, **common)
    else:
        results = tuning.random_search(objective, space, args.trials, **common)
    seconds = time.perf_counter() - start
    print(results)
    print(f"searched in {seconds:.2f} s")
    best = results.best
    if best is None:
        print("every trial failed", file=sys.stderr)
        return 1
    print("best: " + best.summary(results.metric))
    if plot is not None and not write_plot(
            "dev accuracy against learning rate",
            lambda path: results.plot(path, param="lr"), plot):
        return 1
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "tune":
        return tune_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    check_data(parser, args.data)
    for size in args.hidden:
        check_range(parser, "--hidden", size, low=1)
    for option, low in (("--epochs", 1), ("--batch-size", 1), ("--seed", 0)):
        check_range(parser, option, getattr(args, option[2:].replace("-", "_")), low=low)
    check_range(parser, "--lr", args.lr, low=0, low_open=True)
    check_range(parser, "--l2", args.l2, low=0)
    check_range(parser, "--base-error", args.base_error, low=0, high=1)
    if args.precision == "bf16" and args.dtype != "float32":
        parser.error(f"--precision bf16 needs --dtype float32; got --dtype {args.dtype}")
    if args.threads is not None:
        check_threads(parser, "--threads", args.threads)
    plot = args.plot
    for option, path in (("--save", args.save), ("--plot", plot)):
        if path is not None:
            check_output(parser, option, path)
    if plot is not None or args.save:
        if not have_matplotlib():
            if plot is not None:
                parser.error(f"--plot needs {PLOT_EXTRA}")
            print(f"note: no training curves next to the model: they need {PLOT_EXTRA}",
                  file=sys.stderr)
        elif plot is None:
            plot = os.path.splitext(args.save)[0] + ".png"
    import nn
    if args.threads is not None:
        nn.set_num_threads(args.threads)
    name, ((Xtr, ytr), (Xdev, ydev), (Xte, yte)) = load_or_exit(parser, args.data, args.seed)
    n_classes = int(max(ytr.max(), ydev.max(), yte.max())) + 1
    widths = [Xtr.shape[1], *args.hidden]
    model = nn.mlp(widths + [n_classes], args.activation, dtype=np.dtype(args.dtype),
                   seed=args.seed, precision=args.precision)
    model.standardizer = nn.data.Standardizer().fit(Xtr)  # training statistics only
    print(f"data: {name}: {len(ytr)} train, {len(ydev)} dev, {len(yte)} test rows, "
          f"{Xtr.shape[1]} features, {n_classes} classes", flush=True)
    print(f"model: {' -> '.join(map(str, widths + [n_classes]))} ({args.activation}), "
          f"SGD lr={args.lr}, batch {args.batch_size}, {args.epochs} epochs, {args.dtype}"
          f"{', bf16 matrix products' if args.precision == 'bf16' else ''}",
          flush=True)
    # Always progress: a bar in a terminal, one line per epoch when captured.
    verbose = 0 if args.quiet else (1 if sys.stderr.isatty() else 2)
    start = time.perf_counter()
    from .warmup import CompileTimer
    with CompileTimer() as compiling:
        history = model.fit(Xtr, ytr, loss=nn.SoftmaxCrossEntropy(),
                            optimizer=nn.SGD(lr=args.lr), epochs=args.epochs,
                            batch_size=args.batch_size, l2=args.l2,
                            validation_data=(Xdev, ydev), seed=args.seed, verbose=verbose)
    seconds = time.perf_counter() - start
    training = max(seconds - compiling.seconds, 1e-9)
    acc = {}
    for label, X, y in (("train", Xtr, ytr), ("dev", Xdev, ydev), ("test", Xte, yte)):
        acc[label] = model.evaluate(X, y)["accuracy"]
        print(f"{label} accuracy: {acc[label]:.4f}")
    print(f"trained in {seconds:.2f} s: {compiling.seconds:.2f} s compiling kernels (Numba "
          f"caches them for later runs), {training:.2f} s training "
          f"({len(ytr) * args.epochs / training:,.0f} samples/s)")
    print("diagnosis: " + str(nn.diagnose(1 - acc["train"], 1 - acc["dev"],
                                          base_error=args.base_error)))
    saved = save_model(model, args.save) if args.save else True
    plotted = plot is None or write_plot("training curves", history.plot, plot)
    return 0 if saved and plotted else 1


if __name__ == "__main__":
    sys.exit(main())
