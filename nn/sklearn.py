"""A scikit-learn estimator over ``Sequential``: ``nn.sklearn.MLPClassifier``.

Needs scikit-learn (``pip install "numba-nn[sklearn]"``); import it explicitly:

>>> import nn
>>> from nn.sklearn import MLPClassifier
>>> ds = nn.datasets.load_digits()
>>> clf = MLPClassifier((32,), learning_rate=0.01, early_stopping=True, random_state=0)
>>> clf.fit(ds.X / 16, ds.y).score(ds.X / 16, ds.y) > 0.95
True

It works wherever a scikit-learn classifier does: in a ``Pipeline``, in
``cross_val_score`` and ``GridSearchCV``, with ``clone``, ``get_params`` and
``set_params``.
"""
try:
    import sklearn  # noqa: F401  (fails here, with the hint, when not installed)
except ImportError as exc:
    raise ImportError('nn.sklearn needs scikit-learn; install it with: '
                      'pip install "numba-nn[sklearn]"') from exc

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # scikit-learn 1.3 - 1.5
    _sk_validate_data = None

import kernels

from ._progress import resolve_verbose
from ._validation import (check_beta, check_bool, check_choice, check_dtype, check_keep_prob,
                          check_lr, check_scalar, check_weights)
from .data import Standardizer, split
from .layers import gives_one_row_batch
from .losses import SoftmaxCrossEntropy
from .model import mlp
from .optimizers import OPTIMIZER_NAMES, optimizer_by_name
from .callbacks import EarlyStopping

__all__ = ["MLPClassifier"]

_WHERE = "MLPClassifier"
#: Activation names: nn's, and scikit-learn's "logistic" for the sigmoid.
_ACTIVATIONS = {**{name: name for name in kernels.ACTIVATION_CODES}, "logistic": "sigmoid"}
_SEED_HIGH = 2**31 - 1


def _validate_data(estimator, X, y="no_validation", **kwargs):
    if _sk_validate_data is not None:
        return _sk_validate_data(estimator, X, y, **kwargs)
    return estimator._validate_data(X, y, **kwargs)  # pragma: no cover - sklearn < 1.6


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """A multi-layer perceptron classifier trained by nn's Numba kernels.

    Builds a ``Sequential`` of ``Dense`` hidden layers (optionally with ``BatchNorm``
    and ``Dropout``) and a softmax output over the classes, trains it with
    ``SoftmaxCrossEntropy`` by mini-batch gradient descent, and exposes it through the
    scikit-learn estimator API. Binary problems use two softmax outputs.

    Hyperparameters are stored unchanged by ``__init__`` and checked by ``fit``.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (100,)
        Widths of the hidden layers; ``()`` gives softmax (multinomial logistic)
        regression.
    activation : {"relu", "leaky_relu", "tanh", "sigmoid", "logistic", "identity"}
        Of the hidden layers ("logistic" is the sigmoid, as in scikit-learn).
        Weights start with He initialization for (leaky) ReLU, Xavier otherwise.
    optimizer : {"adam", "sgd", "momentum", "rmsprop"}, default "adam"
    learning_rate : float > 0, default 1e-3
    momentum : float in [0, 1), default 0.9
        The ``beta`` of ``optimizer="momentum"``; unused by the others.
    l2 : float >= 0, default 0.0
        L2 penalty ``l2/(2m) sum ||W||^2`` over the Dense weights (m = rows in the
        mini-batch), like scikit-learn's ``alpha``.
    keep_prob : float in (0, 1], default 1.0
        With ``keep_prob < 1``, a ``Dropout(keep_prob)`` follows each hidden layer.
    batch_norm : bool, default False
        Each hidden layer becomes ``Dense(use_bias=False) -> BatchNorm -> Activation``.
        BatchNorm cannot train on a 1-row batch: when ``n % batch_size == 1`` the batch
        size is raised to the next one that leaves no 1-row batch (``batch_size_``).
    batch_size : int >= 1 or "auto", default "auto"
        Rows per step; "auto" is ``min(200, n_samples)``, as in scikit-learn.
    epochs : int >= 1, default 200
        The most epochs to train (scikit-learn's ``max_iter``); training stops sooner
        once it converges (see ``tol``).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training rows (stratified), stop when
        their loss has not improved by more than ``tol`` for ``patience`` epochs, and
        keep the weights of the best epoch. Without it, training stops when the
        training loss has not improved by more than ``tol`` for ``patience`` epochs
        (the last weights are kept), as in scikit-learn.
    validation_fraction : float in (0, 1), default 0.1
        Used with ``early_stopping=True``.
    patience : int >= 1, default 10
        Epochs without improvement before stopping (scikit-learn's
        ``n_iter_no_change``).
    tol : float >= 0, default 1e-4
        An improvement of the monitored loss smaller than this does not count.
    standardize : bool, default False
        Fit an ``nn.data.Standardizer`` on the training rows and scale every input with
        it (in ``fit`` and ``predict``), so raw features may be passed. Equivalent to a
        ``StandardScaler`` before the classifier in a ``Pipeline``.
    dtype : "float32" or "float64", default "float32"
        Of the model's parameters and activations.
    random_state : None, int or numpy.random.RandomState, default None
        Draws the seeds of the weight initialization, dropout masks, the shuffling and
        the validation split. An int gives the same model on every fit; None draws
        from NumPy's global generator.
    verbose : int in 0..2 or "auto", default 0
        0 silent, 1 a progress bar, 2 one line per epoch, "auto" a bar when stderr is a
        terminal (``nn.Sequential.fit``).
    class_weight : dict {label: weight}, "balanced" or None, default None
        Weighs each class's rows in the training loss (scikit-learn's convention;
        "balanced" is ``n_samples / (n_classes * count(label))``), times ``fit``'s
        ``sample_weight``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted; ``predict`` returns them.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names (a pandas DataFrame).
    model_ : nn.Sequential
        The trained network; ``model_.predict`` takes the (standardized if
        ``standardize``) features and returns class probabilities.
    history_ : nn.History
        The per-epoch records of the fit.
    n_iter_ : int
        Epochs trained.
    loss_ : float
        The training loss (with the L2 penalty) of the last epoch.
    loss_curve_ : list of float
        The training loss of each epoch.
    validation_loss_curve_ : list of float or None
        The held-out loss of each epoch, with ``early_stopping``.
    best_validation_loss_ : float or None
        The best held-out loss, whose weights the model keeps, with ``early_stopping``.
    batch_size_ : int
        The batch size used.
    stop_reason_ : str or None
        Why training stopped before ``epochs`` (None when it ran them all).

    Examples
    --------
    >>> import warnings
    >>> import nn
    >>> from sklearn.exceptions import ConvergenceWarning
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> ds = nn.datasets.load_digits()
    >>> pipe = make_pipeline(StandardScaler(), MLPClassifier((64,), batch_size=32,
    ...                                                      epochs=30, random_state=0))
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", ConvergenceWarning)  # 30 epochs: not converged
    ...     scores = cross_val_score(pipe, ds.X, ds.y, cv=3)
    >>> bool(scores.mean() > 0.9)
    True
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, optimizer="adam",
                 learning_rate=1e-3, momentum=0.9, l2=0.0, keep_prob=1.0, batch_norm=False,
                 batch_size="auto", epochs=200, early_stopping=False,
                 validation_fraction=0.1, patience=10, tol=1e-4, standardize=False,
                 dtype="float32", random_state=None, verbose=0, class_weight=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.l2 = l2
        self.keep_prob = keep_prob
        self.batch_norm = batch_norm
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.tol = tol
        self.standardize = standardize
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.class_weight = class_weight

    # -- hyperparameters ---------------------------------------------------------

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, (numbers.Integral, np.integer)) and not isinstance(sizes, bool):
            sizes = (sizes,)
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
            raise TypeError(f"{_WHERE}: hidden_layer_sizes must be an int or a sequence of "
                            f"ints; got {self.hidden_layer_sizes!r}.")
        return [check_scalar("hidden_layer_sizes[]", s, where=_WHERE, low=1, integer=True)
                for s in sizes]

    def _make_optimizer(self):
        name = check_choice("optimizer", self.optimizer, OPTIMIZER_NAMES, where=_WHERE)
        lr = check_lr(self.learning_rate, _WHERE, name="learning_rate")
        # ``momentum`` is Momentum's beta only: RMSprop keeps its own default.
        beta = check_beta("momentum", self.momentum, _WHERE) if name == "momentum" else 0.9
        return optimizer_by_name(name, lr, beta=beta, where=_WHERE)

    def _build_model(self, n_features, n_classes, dtype, seed):
        """The untrained network for the current hyperparameters."""
        activation = check_choice("activation", self.activation, _ACTIVATIONS, where=_WHERE)
        return mlp([n_features, *self._hidden_sizes(), n_classes], _ACTIVATIONS[activation],
                   batch_norm=check_bool("batch_norm", self.batch_norm, where=_WHERE),
                   keep_prob=check_keep_prob(self.keep_prob, _WHERE), output_init="xavier",
                   dtype=dtype, seed=seed, where=_WHERE)

    def _batch_size(self, n, batch_norm):
        bs = self.batch_size
        if isinstance(bs, str) and bs == "auto":
            bs = min(200, n)
        else:
            bs = check_scalar("batch_size", bs, where=_WHERE, low=1, integer=True)
        bs = min(int(bs), n)
        if batch_norm:
            if n == 1:
                raise ValueError(f"{_WHERE}: batch_norm=True needs at least 2 training "
                                 f"rows; got 1.")
            # BatchNorm cannot normalize a 1-row batch: grow the batch until none is.
            while gives_one_row_batch(n, bs):
                bs += 1
        return bs

    def _class_weight(self, classes):
        """``class_weight`` keyed by the classes' indices, as ``Sequential.fit`` takes."""
        cw = self.class_weight
        if cw is None or isinstance(cw, str):
            return cw
        if not isinstance(cw, dict):
            raise TypeError(f"{_WHERE}: class_weight must be a dict {{label: weight}}, "
                            f"'balanced' or None; got {cw!r}.")
        index = {label: i for i, label in enumerate(classes.tolist())}
        unknown = [label for label in cw if label not in index]
        if unknown:
            raise ValueError(f"{_WHERE}: class_weight names labels {unknown[:5]} that are "
                             f"not among the classes of y {classes.tolist()[:10]}.")
        return {index[label]: weight for label, weight in cw.items()}

    # -- fit -----------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Train a new network on ``X`` (n_samples, n_features) and labels ``y``.

        ``sample_weight`` (n_samples,) weighs each row's loss (times ``class_weight``),
        the held-out loss of ``early_stopping`` included. Returns ``self``.
        Each call starts from fresh weights (no warm start).
        """
        X, y = _validate_data(self, X, y, dtype=(np.float64, np.float32))
        check_classification_targets(y)
        classes, y_idx = np.unique(y, return_inverse=True)
        y_idx = y_idx.reshape(-1).astype(np.int64)
        if classes.shape[0] < 2:
            raise ValueError(f"{_WHERE}: needs samples of at least 2 classes; got 1 class "
                             f"({classes[0]!r}).")

        # Every hyperparameter is checked before training starts.
        rng = check_random_state(self.random_state)
        model_seed, shuffle_seed, split_seed = (int(s) for s in rng.randint(0, _SEED_HIGH, 3))
        dtype = check_dtype(self.dtype, _WHERE)
        model = self._build_model(X.shape[1], classes.shape[0], dtype, model_seed)
        optimizer = self._make_optimizer()
        l2 = check_scalar("l2", self.l2, where=_WHERE, low=0.0)
        epochs = check_scalar("epochs", self.epochs, where=_WHERE, low=1, integer=True)
        early_stopping = check_bool("early_stopping", self.early_stopping, where=_WHERE)
        patience = check_scalar("patience", self.patience, where=_WHERE, low=1, integer=True)
        tol = check_scalar("tol", self.tol, where=_WHERE, low=0.0)
        standardize = check_bool("standardize", self.standardize, where=_WHERE)
        verbose = resolve_verbose(self.verbose, _WHERE)
        batch_norm = bool(self.batch_norm)

        weights = None if sample_weight is None else check_weights(
            sample_weight, X.shape[0], _WHERE)
        class_weight = self._class_weight(classes)

        validation_data = None
        X_train, y_train = X, y_idx
        if early_stopping:
            fraction = check_scalar("validation_fraction", self.validation_fraction,
                                    where=_WHERE, low=0.0, high=1.0, low_open=True,
                                    high_open=True)
            n_dev = int(round(fraction * X.shape[0]))
            if n_dev < 1 or n_dev >= X.shape[0]:
                raise ValueError(
                    f"{_WHERE}: early_stopping=True with validation_fraction={fraction} "
                    f"leaves an empty training or validation set for {X.shape[0]} "
                    f"samples; use more samples or early_stopping=False.")
            (rows, y_train), (dev_rows, y_dev) = split(
                np.arange(X.shape[0]), y_idx, ratios=(1.0 - fraction, fraction),
                stratify=True, seed=split_seed)
            X_train, validation_data = X[rows], (X[dev_rows], y_dev)
            if weights is not None:
                weights, validation_data = weights[rows], (*validation_data,
                                                           weights[dev_rows])
        batch_size = self._batch_size(X_train.shape[0], batch_norm)

        if standardize:
            model.standardizer = Standardizer().fit(X_train)
        if early_stopping:
            stopper = EarlyStopping(monitor="dev_loss", patience=patience, min_delta=tol,
                                    restore_best=True)
        else:
            stopper = EarlyStopping(monitor="loss", patience=patience, min_delta=tol,
                                    restore_best=False)
        history = model.fit(X_train, y_train, loss=SoftmaxCrossEntropy(), optimizer=optimizer,
                            epochs=epochs, batch_size=batch_size, l2=l2, seed=shuffle_seed,
                            validation_data=validation_data, callbacks=[stopper],
                            verbose=verbose, sample_weight=weights,
                            class_weight=class_weight)

        self.classes_ = classes
        self.model_ = model
        self.history_ = history
        self.n_iter_ = len(history.epochs)
        self.loss_curve_ = list(history["loss"])
        self.loss_ = self.loss_curve_[-1]
        self.batch_size_ = batch_size
        self.stop_reason_ = history.stop_reason
        if early_stopping:
            self.validation_loss_curve_ = list(history["dev_loss"])
            self.best_validation_loss_ = stopper.best
        else:
            self.validation_loss_curve_ = None
            self.best_validation_loss_ = None
        if history.stop_reason is None:
            warnings.warn(
                f"{_WHERE}: trained the maximum epochs={epochs} and the "
                f"{'validation' if early_stopping else 'training'} loss was still improving "
                f"by more than tol={tol:g}; raise epochs to train longer.",
                ConvergenceWarning)
        return self

    # -- predict -------------------------------------------------------------------

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_``
        order, as float64 rows that sum to 1."""
        check_is_fitted(self)
        X = _validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        proba = self.model_.predict(X).astype(np.float64)
        proba /= proba.sum(axis=1, keepdims=True)
        return proba

    def predict_log_proba(self, X):
        """The log of ``predict_proba`` (-inf where a probability underflowed to 0)."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class label of each row (from ``classes_``)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    # -- tags ----------------------------------------------------------------------

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.classifier_tags.multi_label = False
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"allow_nan": False, "multilabel": False}
