"""Regression on the diabetes data: nn's MLPRegressor against scikit-learn's baselines.

scikit-learn's bundled diabetes set (442 patients, 10 standardized features, a disease
progression score one year later; no download) is split 75/25 into train and held-out
rows. The features are standardized with the training rows' statistics, the target
too (R^2 does not change with its scale). Four models learn the target:

- ``Ridge``: linear least squares with an L2 penalty, the usual baseline here;
- scikit-learn's ``MLPRegressor`` and ``nn.sklearn.MLPRegressor`` with the same
  hyperparameters: one hidden layer of 32 ReLU units, Adam at learning rate 0.003,
  32-row mini-batches, the L2 penalty ``l2/(2m) ||W||^2`` (scikit-learn's ``alpha``);
- ``nn.Sequential`` with ``nn.MeanSquaredError``: the same network by hand.

It prints R^2 on the held-out rows (the whole script runs in a few seconds). The data are
small and noisy: a straight line explains about as much as a network does, and an
unregularized network overfits (``--l2 0`` shows it).

    python examples/regression.py [--epochs 200] [--l2 3.0] [--seed 0]
"""
import argparse
import sys
import warnings

from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor as SklearnMLPRegressor

import nn
from nn.sklearn import MLPRegressor

HIDDEN = 32
LR = 0.003
BATCH = 32


def load_data(seed=0):
    """Standardized (X_train, y_train), (X_test, y_test) of the diabetes data."""
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed)
    scaler = nn.data.Standardizer().fit(Xtr)
    mean, std = ytr.mean(), ytr.std()
    return ((scaler.transform(Xtr), (ytr - mean) / std),
            (scaler.transform(Xte), (yte - mean) / std))


def sequential(Xtr, ytr, Xte, epochs, l2, seed):
    """The network of MLPRegressor, built and trained with nn.Sequential directly."""
    model = nn.mlp([Xtr.shape[1], HIDDEN, 1], "relu", output_init="xavier", seed=seed)
    model.fit(Xtr, ytr, loss=nn.MeanSquaredError(), optimizer=nn.Adam(lr=LR),
              epochs=epochs, batch_size=BATCH, l2=l2, seed=seed, verbose=0)
    return model.predict(Xte).ravel()


MODELS = {
    "Ridge (scikit-learn)": lambda Xtr, ytr, Xte, epochs, l2, seed:
        Ridge(alpha=1.0).fit(Xtr, ytr).predict(Xte),
    "MLPRegressor (scikit-learn)": lambda Xtr, ytr, Xte, epochs, l2, seed:
        SklearnMLPRegressor(hidden_layer_sizes=(HIDDEN,), alpha=l2, batch_size=BATCH,
                            learning_rate_init=LR, max_iter=epochs,
                            random_state=seed).fit(Xtr, ytr).predict(Xte),
    "nn.sklearn.MLPRegressor": lambda Xtr, ytr, Xte, epochs, l2, seed:
        MLPRegressor((HIDDEN,), l2=l2, batch_size=BATCH, learning_rate=LR, epochs=epochs,
                     random_state=seed).fit(Xtr, ytr).predict(Xte),
    "nn.Sequential + MeanSquaredError": sequential,
}


def main(epochs=200, l2=3.0, seed=0, file=sys.stdout):
    """Train each model once; print and return rows (name, held-out R^2)."""
    (Xtr, ytr), (Xte, yte) = load_data(seed)
    print(f"diabetes: {len(ytr)} train, {len(yte)} held-out rows, {Xtr.shape[1]} features; "
          f"networks 10-{HIDDEN}-1 ReLU, Adam lr {LR}, batch {BATCH}, l2 {l2:g}, "
          f"at most {epochs} epochs", file=file)
    print(f"{'model':<34} {'R^2':>6}", file=file)
    rows = []
    for name, train_and_predict in MODELS.items():
        with warnings.catch_warnings():
            # both MLPRegressors stop early once the training loss stalls; when a short
            # --epochs cuts them first, they warn, which is no news here
            warnings.simplefilter("ignore", ConvergenceWarning)
            pred = train_and_predict(Xtr, ytr, Xte, epochs, l2, seed)
        rows.append((name, r2_score(yte, pred)))
        print(f"{name:<34} {rows[-1][1]:>6.3f}", file=file)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--l2", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.epochs, args.l2, args.seed)
