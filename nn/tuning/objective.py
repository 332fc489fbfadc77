"""A ready-made objective for the searches: ``mlp_objective`` trains a fully connected
network on fixed data, resumable from a checkpoint; the ``MLPObjective`` it returns
carries the data, so it pickles to worker processes."""
import time

import numpy as np

from .._validation import (check_array, check_beta, check_bool, check_choice, check_dtype,
                           check_keep_prob, check_lr, check_scalar)
from ..optimizers import OPTIMIZER_NAMES




class MLPObjective:
    """A picklable objective that trains a fully connected network on fixed data.

    Made by ``mlp_objective``; see there. ``objective(params, seed=0, epochs=None,
    initial_epoch=0, checkpoint=None)`` returns ``{"dev_accuracy", "dev_loss",
    "train_accuracy", "train_loss", "time"}`` (accuracies for classification losses).
    """

    PARAMS = ("lr", "hidden", "layers", "activation", "optimizer", "beta", "beta1", "beta2",
              "l2", "l1", "batch_size", "keep_prob", "epochs")

    def __init__(self, X_train, y_train, X_dev, y_dev, defaults, loss=None, standardize=True,
                 dtype=np.float32):
        from ..data import Standardizer
        from ..losses import SoftmaxCrossEntropy, check_loss
        where = "mlp_objective"
        self.dtype = check_dtype(dtype, where)
        self.X_train = check_array("X_train", X_train, where=where, dtype=self.dtype)
        self.X_dev = check_array("X_dev", X_dev, where=where, dtype=self.dtype,
                                 n_cols=self.X_train.shape[1])
        self.y_train, self.y_dev = np.asarray(y_train), np.asarray(y_dev)
        for name, X, y in (("y_train", self.X_train, self.y_train),
                           ("y_dev", self.X_dev, self.y_dev)):
            if y.ndim == 0 or y.shape[0] != X.shape[0]:
                raise ValueError(f"{where}: {name} must have one row per row of "
                                 f"X_{name[2:]} ({X.shape[0]}); got shape {y.shape}.")
        self.loss = check_loss(SoftmaxCrossEntropy() if loss is None else loss, where)
        if isinstance(self.loss, SoftmaxCrossEntropy) and self.y_train.ndim == 1:
            if not np.issubdtype(self.y_train.dtype, np.number) or self.y_train.size == 0:
                raise TypeError(f"{where}: y_train must hold integer class labels; got dtype "
                                f"{self.y_train.dtype}.")
            self.n_outputs = int(max(self.y_train.max(), self.y_dev.max())) + 1
        else:
            self.n_outputs = self.y_train.shape[1] if self.y_train.ndim == 2 else 1
        # Fail now, not in every trial, on bad data (labels out of range, NaN...).
        self.loss.targets(self.y_train, self.n_outputs, len(self.y_train), self.dtype,
                          where + " (y_train)")
        self.loss.targets(self.y_dev, self.n_outputs, len(self.y_dev), self.dtype,
                          where + " (y_dev)")
        self.standardizer = Standardizer().fit(self.X_train) if check_bool(
            "standardize", standardize, where=where) else None
        self.defaults = dict(defaults)
        self.check_space(self.defaults)
        self._resolve({}, where)   # validates the defaults

    def check_space(self, space):
        """Raise if ``space`` names a hyperparameter this objective does not know."""
        unknown = [k for k in space if k not in self.PARAMS]
        if unknown:
            raise ValueError(f"mlp_objective: unknown hyperparameter(s) "
                             f"{', '.join(map(repr, unknown))}; known: "
                             f"{', '.join(self.PARAMS)}.")

    def _resolve(self, params, where):
        import kernels
        self.check_space(params)
        p = {**self.defaults, **params}
        out = {"lr": check_lr(p["lr"], where)}
        hidden = p["hidden"]
        if isinstance(hidden, (tuple, list)):
            widths = [check_scalar(f"hidden[{i}]", h, where=where, low=1, integer=True)
                      for i, h in enumerate(hidden)]
        else:
            width = check_scalar("hidden", hidden, where=where, low=1, integer=True)
            layers = check_scalar("layers", p["layers"], where=where, low=1, integer=True)
            widths = [width] * layers
        out["widths"] = widths
        out["activation"] = check_choice("activation", p["activation"],
                                         [a for a in kernels.ACTIVATION_CODES
                                          if a != "identity"], where=where)
        out["optimizer"] = check_choice("optimizer", p["optimizer"], OPTIMIZER_NAMES, where=where)
        for name in ("beta", "beta1", "beta2"):
            out[name] = check_beta(name, p[name], where)
        for name in ("l2", "l1"):
            out[name] = check_scalar(name, p[name], where=where, low=0.0)
        out["batch_size"] = check_scalar("batch_size", p["batch_size"], where=where, low=1,
                                         integer=True)
        out["keep_prob"] = check_keep_prob(p["keep_prob"], where)
        out["epochs"] = check_scalar("epochs", p["epochs"], where=where, low=1, integer=True)
        return out

    def build(self, params, seed=0):
        """The untrained model and optimizer for ``params`` (a dict of overrides)."""
        from ..model import mlp
        from ..optimizers import optimizer_by_name
        where = "MLPObjective.build"
        p = self._resolve(params, where)
        model = mlp([self.X_train.shape[1], *p["widths"], self.n_outputs], p["activation"],
                    keep_prob=p["keep_prob"], dtype=self.dtype, seed=seed, where=where)
        model.standardizer = self.standardizer
        return model, optimizer_by_name(p["optimizer"], p["lr"], beta=p["beta"],
                                        beta1=p["beta1"], beta2=p["beta2"], where=where)

    def __call__(self, params, seed=0, epochs=None, initial_epoch=0, checkpoint=None):
        from ..io import load, save
        from ..training import fit
        where = "MLPObjective"
        start = time.perf_counter()
        p = self._resolve(params, where)
        seed = check_scalar("seed", seed, where=where, low=0, integer=True)
        epochs = p["epochs"] if epochs is None else check_scalar(
            "epochs", epochs, where=where, low=1, integer=True)
        initial_epoch = check_scalar("initial_epoch", initial_epoch, where=where, low=0,
                                     integer=True)
        if initial_epoch > 0:
            if checkpoint is None:
                raise ValueError(f"{where}: initial_epoch={initial_epoch} resumes from a "
                                 f"checkpoint; pass checkpoint=PATH.")
            model = load(checkpoint)
            optimizer = model.optimizer
        else:
            model, optimizer = self.build(params, seed)
        history = fit(model, self.X_train, self.y_train, loss=self.loss, optimizer=optimizer,
                      epochs=epochs, initial_epoch=initial_epoch,
                      batch_size=p["batch_size"], l2=p["l2"], l1=p["l1"], seed=seed,
                      validation_data=(self.X_dev, self.y_dev), verbose=0)
        if checkpoint is not None:
            save(model, checkpoint)
        last = history.last()
        metrics = {}
        for key in ("dev_accuracy", "dev_loss", "accuracy", "loss"):
            if key in last:
                metrics[key if key.startswith("dev_") else "train_" + key] = last[key]
        metrics["time"] = time.perf_counter() - start
        return metrics

    def __repr__(self):
        return (f"MLPObjective({self.X_train.shape[0]} train, {self.X_dev.shape[0]} dev rows, "
                f"{self.X_train.shape[1]} features, {self.n_outputs} outputs)")


def mlp_objective(X_train, y_train, X_dev, y_dev, *, epochs=10, lr=1e-3, hidden=64, layers=1,
                  activation="relu", optimizer="adam", beta=0.9, beta1=0.9, beta2=0.999,
                  l2=0.0, l1=0.0, batch_size=32, keep_prob=1.0, loss=None, standardize=True,
                  dtype=np.float32):
    """An objective for ``random_search`` and ``successive_halving``: train an MLP.

    ``objective(params, seed=0, epochs=None, initial_epoch=0, checkpoint=None)`` builds
    ``n_features -> hidden x layers -> n_outputs`` (Dense layers with ``activation``,
    He or Xavier initialization, a Dropout after each hidden layer when ``keep_prob <
    1``), fits it on the training data with the model's ``standardizer`` fitted on
    ``X_train`` (``standardize=True``), evaluates on the dev data after each epoch and
    returns ``{"dev_accuracy", "dev_loss", "train_accuracy", "train_loss", "time"}``.
    The keyword arguments are the defaults; ``params`` overrides any of them: ``lr``,
    ``hidden`` (an int, or a tuple of widths), ``layers``, ``activation``, ``optimizer``
    ("sgd", "momentum", "rmsprop", "adam"), ``beta`` (momentum's and RMSprop's),
    ``beta1``, ``beta2`` (Adam's), ``l2``, ``l1``, ``batch_size``, ``keep_prob``,
    ``epochs``. The trial's ``seed`` seeds the initialization and the shuffling; with
    ``checkpoint`` the trained model is saved there (``nn.save``), and with
    ``initial_epoch > 0`` training resumes from it: the same bits as training straight.

    The returned object is picklable (it carries the data), so the search can run it in
    worker processes. ``loss`` defaults to ``nn.SoftmaxCrossEntropy()`` with integer
    labels; ``nn.BinaryCrossEntropy()`` and ``nn.MeanSquaredError()`` work too (rank by
    ``metric="dev_loss"`` when there is no accuracy).
    """
    defaults = dict(epochs=epochs, lr=lr, hidden=hidden, layers=layers, activation=activation,
                    optimizer=optimizer, beta=beta, beta1=beta1, beta2=beta2, l2=l2, l1=l1,
                    batch_size=batch_size, keep_prob=keep_prob)
    return MLPObjective(X_train, y_train, X_dev, y_dev, defaults, loss=loss,
                        standardize=standardize, dtype=dtype)
