"""Plain mini-batch gradient descent vs momentum vs Adam on the embedded digits.

The notes' comparison, on a small real problem: the same network (64-32-16-10, ReLU),
the same initial weights, the same shuffling seed, learning rate and number of epochs;
only the update rule changes. Prints the final cost and accuracy of each, on the
training set and on a held-out dev set.

    python examples/optimizers.py [--epochs 20]
"""
import argparse
import sys

import nn

LR = 0.01
BATCH = 64


def build_model(seed=0):
    return nn.Sequential([
        nn.Dense(64, 32, activation="relu"),
        nn.Dense(32, 16, activation="relu"),
        nn.Dense(16, 10),                                   # logits
    ], seed=seed)


def load_data(seed=0):
    data = nn.datasets.load_digits()
    (Xtr, ytr), (Xdev, ydev) = nn.data.split(data.X, data.y, ratios=(0.8, 0.2),
                                             stratify=True, seed=seed)
    scaler = nn.data.Standardizer().fit(Xtr)
    return (scaler.transform(Xtr), ytr), (scaler.transform(Xdev), ydev)


OPTIMIZERS = {
    "gradient descent": lambda: nn.SGD(lr=LR),
    "momentum": lambda: nn.Momentum(lr=LR, beta=0.9),
    "adam": lambda: nn.Adam(lr=LR, beta1=0.9, beta2=0.999, eps=1e-8),
}


def main(epochs=20, seed=0, file=sys.stdout):
    """Train one model per optimizer; print and return rows (name, train cost,
    train accuracy, dev cost, dev accuracy)."""
    (Xtr, ytr), (Xdev, ydev) = load_data(seed)
    loss = nn.SoftmaxCrossEntropy()
    print(f"digits: {len(ytr)} train, {len(ydev)} dev rows; 64-32-16-10 ReLU, lr {LR}, "
          f"batch {BATCH}, {epochs} epochs", file=file)
    print(f"{'optimizer':<17} {'train cost':>10} {'train acc':>9} {'dev cost':>9} "
          f"{'dev acc':>8}", file=file)
    rows = []
    for name, make in OPTIMIZERS.items():
        model = build_model(seed)
        model.fit(Xtr, ytr, loss=loss, optimizer=make(), epochs=epochs, batch_size=BATCH,
                  seed=seed)
        train, dev = model.evaluate(Xtr, ytr), model.evaluate(Xdev, ydev)
        row = (name, train["loss"], train["accuracy"], dev["loss"], dev["accuracy"])
        rows.append(row)
        print(f"{name:<17} {row[1]:>10.4f} {row[2]:>9.2%} {row[3]:>9.4f} {row[4]:>8.2%}",
              file=file)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.epochs, args.seed)
