"""scikit-learn estimators over ``Sequential``: ``nn.sklearn.MLPClassifier`` and
``nn.sklearn.MLPRegressor``.

Needs scikit-learn (``pip install "numba-nn[sklearn]"``); import it explicitly:

>>> import nn
>>> from nn.sklearn import MLPClassifier
>>> ds = nn.datasets.load_digits()
>>> clf = MLPClassifier((32,), learning_rate=0.01, early_stopping=True, random_state=0)
>>> clf.fit(ds.X / 16, ds.y).score(ds.X / 16, ds.y) > 0.95
True

They work wherever a scikit-learn classifier or regressor does: in a ``Pipeline``, in
``cross_val_score`` and ``GridSearchCV``, with ``clone``, ``get_params`` and
``set_params``. Both take a scipy.sparse X (any format; converted to CSR once, never
densified: the first layer runs nn's CSR kernels), train incrementally with
``partial_fit`` (one epoch over the rows given per call) and continue the last fit with
``warm_start=True``.
"""
try:
    import sklearn  # noqa: F401  (fails here, with the hint, when not installed)
except ImportError as exc:
    raise ImportError('nn.sklearn needs scikit-learn; install it with: '
                      'pip install "numba-nn[sklearn]"') from exc

import numbers
import warnings

import numpy as np
import scipy.sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
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
from .losses import MeanSquaredError, SoftmaxCrossEntropy
from .model import PRECISIONS, mlp
from .optimizers import OPTIMIZER_NAMES, optimizer_by_name
from .callbacks import EarlyStopping

__all__ = ["MLPClassifier", "MLPRegressor"]

#: Activation names: nn's, and scikit-learn's "logistic" for the sigmoid.
_ACTIVATIONS = {**{name: name for name in kernels.ACTIVATION_CODES}, "logistic": "sigmoid"}
_SEED_HIGH = 2**31 - 1


def _validate_data(estimator, X, y="no_validation", **kwargs):
    if _sk_validate_data is not None:
        return _sk_validate_data(estimator, X, y, **kwargs)
    return estimator._validate_data(X, y, **kwargs)  # pragma: no cover - sklearn < 1.6


#: The parameters both estimators share, for their docstrings.
_PARAMETERS = """
    hidden_layer_sizes : int or sequence of int, default (100,)
        Widths of the hidden layers; ``()`` gives {linear}.
    activation : {{"relu", "leaky_relu", "tanh", "sigmoid", "logistic", "identity"}}
        Of the hidden layers ("logistic" is the sigmoid, as in scikit-learn).
        Weights start with He initialization for (leaky) ReLU, Xavier otherwise.
    optimizer : {{"adam", "sgd", "momentum", "rmsprop"}}, default "adam"
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
        Hold out ``validation_fraction`` of the training rows ({held_out}), stop when
        their loss has not improved by more than ``tol`` for ``patience`` epochs, and
        keep the weights of the best epoch. Without it, training stops when the
        training loss has not improved by more than ``tol`` for ``patience`` epochs
        (the last weights are kept), as in scikit-learn. ``partial_fit`` never stops
        early.
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
        ``StandardScaler`` before the estimator in a ``Pipeline``. Dense X only
        (centering would fill a sparse X); ``partial_fit`` fits it on the rows of its
        first call.
    warm_start : bool, default False
        When True and the estimator is fitted, ``fit`` continues from the weights and
        the optimizer state (Adam's moments, momentum's velocity) of the last fit, for
        ``epochs`` more epochs, provided the network it would build is the same (the
        features, {outputs} and the layer hyperparameters); otherwise it starts afresh.
        The optimizer state is kept while ``optimizer`` names the same kind (its
        ``learning_rate`` may change between fits).
    dtype : "float32" or "float64", default "float32"
        Of the model's parameters and activations.
    precision : "fp32" or "bf16", default "fp32"
        Of the Dense layers' matrix products, passed to ``nn.Sequential``: "bf16"
        (with dtype float32) rounds their operands to bfloat16 and sums the products
        in float32, about 2x faster GEMMs on CPUs with AVX512-BF16; where
        ``kernels.BF16_BACKEND`` is "none" the model warns and computes in float32.
    random_state : None, int or numpy.random.RandomState, default None
        Draws the seeds of the weight initialization, dropout masks, the shuffling and
        the validation split. An int gives the same model on every fit; None draws
        from NumPy's global generator.
    verbose : int in 0..2 or "auto", default 0
        0 silent, 1 a progress bar, 2 one line per epoch, "auto" a bar when stderr is a
        terminal (``nn.Sequential.fit``).
"""

#: The fitted attributes both estimators share, for their docstrings.
_ATTRIBUTES = """
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names (a pandas DataFrame).
    model_ : nn.Sequential
        The trained network; ``model_.predict`` takes the (standardized if
        ``standardize``) features and returns {model_output}.
    history_ : nn.History
        The per-epoch records of the latest ``fit`` or ``partial_fit`` call (its
        ``final`` holds only the epoch: the estimator keeps no training data to
        measure the rest; ``model_.evaluate`` does).
    n_iter_ : int
        Epochs trained since the network was built (``warm_start`` fits and
        ``partial_fit`` calls add theirs).
    loss_ : float
        The training loss ({loss}, with the L2 penalty) of the last epoch.
    loss_curve_ : list of float
        The training loss of each of the ``n_iter_`` epochs.
    validation_loss_curve_ : list of float or None
        The held-out loss of each epoch of the latest ``fit``, with ``early_stopping``.
    best_validation_loss_ : float or None
        The best held-out loss, whose weights the model keeps, with ``early_stopping``.
    batch_size_ : int
        The batch size used by the latest call.
    stop_reason_ : str or None
        Why the latest ``fit`` stopped before ``epochs`` (None when it ran them all).
"""


class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: the hyperparameters, the network
    built from them, and one training routine behind ``fit`` and ``partial_fit``.

    A subclass gives ``_loss_type``, ``_stratify`` (the early-stopping split),
    ``_y_checks`` (``validate_data``'s options for y), and ``_targets`` (y as the
    model's targets); ``_fit_kwargs`` adds arguments of ``Sequential.fit``.
    """

    _loss_type = None
    _stratify = False
    _y_checks = {}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, optimizer="adam",
                 learning_rate=1e-3, momentum=0.9, l2=0.0, keep_prob=1.0, batch_norm=False,
                 batch_size="auto", epochs=200, early_stopping=False,
                 validation_fraction=0.1, patience=10, tol=1e-4, standardize=False,
                 warm_start=False, dtype="float32", precision="fp32", random_state=None,
                 verbose=0):
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
        self.warm_start = warm_start
        self.dtype = dtype
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose

    @property
    def _where(self):
        return type(self).__name__

    # -- hyperparameters ---------------------------------------------------------

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, (numbers.Integral, np.integer)) and not isinstance(sizes, bool):
            sizes = (sizes,)
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
            raise TypeError(f"{self._where}: hidden_layer_sizes must be an int or a "
                            f"sequence of ints; got {self.hidden_layer_sizes!r}.")
        return tuple(check_scalar("hidden_layer_sizes[]", s, where=self._where, low=1,
                                  integer=True) for s in sizes)

    def _make_optimizer(self):
        where = self._where
        name = check_choice("optimizer", self.optimizer, OPTIMIZER_NAMES, where=where)
        lr = check_lr(self.learning_rate, where, name="learning_rate")
        # ``momentum`` is Momentum's beta only: RMSprop keeps its own default.
        beta = check_beta("momentum", self.momentum, where) if name == "momentum" else 0.9
        return optimizer_by_name(name, lr, beta=beta, where=where)

    def _layout(self, n_features, n_outputs):
        """Everything that decides the network's shape and meaning, checked: a fit
        continues the last one only when this is unchanged."""
        where = self._where
        activation = check_choice("activation", self.activation, _ACTIVATIONS, where=where)
        return dict(widths=(n_features, *self._hidden_sizes(), n_outputs),
                    activation=_ACTIVATIONS[activation],
                    batch_norm=check_bool("batch_norm", self.batch_norm, where=where),
                    keep_prob=check_keep_prob(self.keep_prob, where),
                    dtype=check_dtype(self.dtype, where),
                    precision=check_choice("precision", self.precision, PRECISIONS,
                                           where=where),
                    standardize=check_bool("standardize", self.standardize, where=where))

    def _build_model(self, layout, seed):
        """The untrained network for ``layout``."""
        return mlp(layout["widths"], layout["activation"], batch_norm=layout["batch_norm"],
                   keep_prob=layout["keep_prob"], output_init="xavier",
                   dtype=layout["dtype"], precision=layout["precision"], seed=seed,
                   where=self._where)

    def _batch_size(self, n, batch_norm):
        bs = self.batch_size
        if isinstance(bs, str) and bs == "auto":
            bs = min(200, n)
        else:
            bs = check_scalar("batch_size", bs, where=self._where, low=1, integer=True)
        bs = min(int(bs), n)
        if batch_norm:
            if n == 1:
                raise ValueError(f"{self._where}: batch_norm=True needs at least 2 training "
                                 f"rows; got 1 sample.")
            # BatchNorm cannot normalize a 1-row batch: grow the batch until none is.
            while gives_one_row_batch(n, bs):
                bs += 1
        return bs

    def _check_sparse(self, X, standardized):
        if standardized and scipy.sparse.issparse(X):
            raise ValueError(
                f"{self._where}: X is sparse and standardize=True; centering would make "
                f"every entry nonzero. Scale sparse features beforehand (e.g. "
                f"sklearn.preprocessing.MaxAbsScaler) and set standardize=False.")

    # -- training --------------------------------------------------------------------

    def _fit_kwargs(self, target_attrs, incremental):
        """Further keyword arguments of ``Sequential.fit`` (the classifier's
        class_weight)."""
        return {}

    def _fit(self, X, y, sample_weight, *, incremental, classes=None):
        """``fit`` (``incremental=False``) and ``partial_fit`` (one epoch): train a new
        network, or continue ``model_`` (``partial_fit`` after the first call, ``fit``
        with ``warm_start``)."""
        where = self._where
        fitted = hasattr(self, "model_")
        # partial_fit's later calls check X against the first one's features; a fit
        # resets them (a warm start with other features starts afresh).
        X, y = _validate_data(self, X, y, reset=not (incremental and fitted),
                              accept_sparse="csr", dtype=(np.float64, np.float32),
                              **self._y_checks)
        resume = fitted and (incremental or check_bool("warm_start", self.warm_start,
                                                       where=where))
        T, n_outputs, target_attrs = self._targets(y, classes, incremental=incremental,
                                                   resume=resume)

        # Every hyperparameter is checked before training starts.
        layout = self._layout(X.shape[1], n_outputs)
        self._check_sparse(X, layout["standardize"])
        if resume and layout != self._layout_:
            if incremental:
                raise ValueError(
                    f"{where}: partial_fit continues the network of the first call, "
                    f"{self._layout_}; the data and hyperparameters now give {layout}. "
                    f"Call fit to start a new network.")
            resume = False   # warm_start: the network would change, start afresh
        rng = check_random_state(self.random_state)
        model_seed, shuffle_seed, split_seed = (int(s) for s in rng.randint(0, _SEED_HIGH, 3))
        model = self.model_ if resume else self._build_model(layout, model_seed)
        optimizer = self._make_optimizer()
        if resume and type(model.optimizer) is type(optimizer):
            optimizer.state = model.optimizer.state   # Adam's moments etc. carry on
        l2 = check_scalar("l2", self.l2, where=where, low=0.0)
        epochs = check_scalar("epochs", self.epochs, where=where, low=1, integer=True)
        early_stopping = not incremental and check_bool("early_stopping",
                                                        self.early_stopping, where=where)
        patience = check_scalar("patience", self.patience, where=where, low=1, integer=True)
        tol = check_scalar("tol", self.tol, where=where, low=0.0)
        verbose = resolve_verbose(self.verbose, where)
        weights = None if sample_weight is None else check_weights(
            sample_weight, X.shape[0], where)
        fit_kwargs = self._fit_kwargs(target_attrs, incremental)

        validation_data = None
        X_train, T_train = X, T
        if early_stopping:
            fraction = check_scalar("validation_fraction", self.validation_fraction,
                                    where=where, low=0.0, high=1.0, low_open=True,
                                    high_open=True)
            n_dev = int(round(fraction * X.shape[0]))
            if n_dev < 1 or n_dev >= X.shape[0]:
                raise ValueError(
                    f"{where}: early_stopping=True with validation_fraction={fraction} "
                    f"leaves an empty training or validation set for {X.shape[0]} "
                    f"samples; use more samples or early_stopping=False.")
            (rows, T_train), (dev_rows, T_dev) = split(
                np.arange(X.shape[0]), T, ratios=(1.0 - fraction, fraction),
                stratify=self._stratify, seed=split_seed)
            X_train, validation_data = X[rows], (X[dev_rows], T_dev)
            if weights is not None:
                weights, validation_data = weights[rows], (*validation_data,
                                                           weights[dev_rows])
        batch_size = self._batch_size(X_train.shape[0], layout["batch_norm"])

        if layout["standardize"] and not resume:
            model.standardizer = Standardizer().fit(X_train)
        callbacks = []
        if not incremental:
            monitor = "dev_loss" if early_stopping else "loss"
            callbacks.append(EarlyStopping(monitor=monitor, patience=patience, min_delta=tol,
                                           restore_best=early_stopping))
        done = self.n_iter_ if resume else 0
        history = model.fit(X_train, T_train, loss=self._loss_type(), optimizer=optimizer,
                            epochs=done + (1 if incremental else epochs), initial_epoch=done,
                            batch_size=batch_size, l2=l2, seed=shuffle_seed,
                            validation_data=validation_data, callbacks=callbacks,
                            verbose=verbose, sample_weight=weights, **fit_kwargs)

        for name, value in target_attrs.items():
            setattr(self, name, value)
        self._layout_ = layout
        losses = list(history["loss"])
        self.model_ = model
        history._release_data()   # an estimator keeps no training data
        self.history_ = history
        self.n_iter_ = done + len(losses)
        self.loss_curve_ = (self.loss_curve_ if resume else []) + losses
        self.loss_ = losses[-1]
        self.batch_size_ = batch_size
        self.stop_reason_ = history.stop_reason
        self.validation_loss_curve_ = list(history["dev_loss"]) if early_stopping else None
        self.best_validation_loss_ = callbacks[0].best if early_stopping else None
        if not incremental and history.stop_reason is None:
            warnings.warn(
                f"{where}: trained the maximum epochs={epochs} and the "
                f"{'validation' if early_stopping else 'training'} loss was still improving "
                f"by more than tol={tol:g}; raise epochs to train longer.",
                ConvergenceWarning)
        return self

    def _output(self, X):
        """The network's output for X, float64 (n_samples, n_outputs)."""
        check_is_fitted(self)
        X = _validate_data(self, X, accept_sparse="csr", dtype=(np.float64, np.float32),
                           reset=False)
        self._check_sparse(X, self.model_.standardizer is not None)
        return self.model_.predict(X).astype(np.float64)

    # -- tags ----------------------------------------------------------------------

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = not self.standardize
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"allow_nan": False}


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = f"""A multi-layer perceptron classifier trained by nn's Numba kernels.

    Builds a ``Sequential`` of ``Dense`` hidden layers (optionally with ``BatchNorm``
    and ``Dropout``) and a softmax output over the classes, trains it with
    ``SoftmaxCrossEntropy`` by mini-batch gradient descent, and exposes it through the
    scikit-learn estimator API. Binary problems use two softmax outputs.

    Hyperparameters are stored unchanged by ``__init__`` and checked by ``fit``.

    Parameters
    ----------{_PARAMETERS.format(linear="softmax (multinomial logistic) regression",
                                   held_out="stratified", outputs="classes")}\
    class_weight : dict {{label: weight}}, "balanced" or None, default None
        Weighs each class's rows in the training loss (scikit-learn's convention;
        "balanced" is ``n_samples / (n_classes * count(label))``), times ``fit``'s
        ``sample_weight``. ``partial_fit`` takes a dict only ("balanced" needs all of
        y; compute it with ``sklearn.utils.class_weight.compute_class_weight``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted; ``predict`` returns them.{_ATTRIBUTES.format(
        model_output="class probabilities", loss="softmax cross-entropy")}
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

    Training in chunks, one epoch over each per call (``classes`` on the first):

    >>> import numpy as np
    >>> clf = MLPClassifier((32,), learning_rate=0.01, random_state=0)
    >>> for epoch in range(5):
    ...     for rows in np.array_split(np.arange(len(ds.y)), 4):
    ...         clf = clf.partial_fit(ds.X[rows] / 16, ds.y[rows], classes=np.arange(10))
    >>> clf.n_iter_, bool(clf.score(ds.X / 16, ds.y) > 0.9)
    (20, True)
    """

    _loss_type = SoftmaxCrossEntropy
    _stratify = True

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, class_weight=None,
                 optimizer="adam", learning_rate=1e-3, momentum=0.9, l2=0.0, keep_prob=1.0,
                 batch_norm=False, batch_size="auto", epochs=200, early_stopping=False,
                 validation_fraction=0.1, patience=10, tol=1e-4, standardize=False,
                 warm_start=False, dtype="float32", precision="fp32", random_state=None,
                 verbose=0):
        super().__init__(
            hidden_layer_sizes, activation, optimizer=optimizer, learning_rate=learning_rate,
            momentum=momentum, l2=l2, keep_prob=keep_prob, batch_norm=batch_norm,
            batch_size=batch_size, epochs=epochs, early_stopping=early_stopping,
            validation_fraction=validation_fraction, patience=patience, tol=tol,
            standardize=standardize, warm_start=warm_start, dtype=dtype,
            precision=precision, random_state=random_state, verbose=verbose)
        self.class_weight = class_weight

    def _targets(self, y, classes, *, incremental, resume):
        """y as class indices, the number of outputs, and ``classes_``: from y in a new
        fit, from ``classes`` in partial_fit's first call, kept after that."""
        where = self._where
        check_classification_targets(y)
        if incremental and not resume:
            if classes is None:
                raise ValueError(f"{where}: the first call to partial_fit needs classes=, "
                                 f"every label y may hold in this and later calls (e.g. "
                                 f"classes=np.unique(y_all)); got classes=None.")
            known = np.unique(classes)
        elif incremental:
            known = self.classes_
            if classes is not None and not np.array_equal(np.unique(classes), known):
                raise ValueError(f"{where}: classes={np.unique(classes).tolist()[:10]} "
                                 f"differs from the first partial_fit call's "
                                 f"{known.tolist()[:10]}.")
        else:
            known = np.unique(y)
            if resume and not np.array_equal(known, self.classes_):
                raise ValueError(f"{where}: warm_start=True continues a fit on the classes "
                                 f"{self.classes_.tolist()[:10]}; y holds "
                                 f"{known.tolist()[:10]}. Set warm_start=False to start "
                                 f"afresh.")
        if known.shape[0] < 2:
            raise ValueError(f"{where}: needs samples of at least 2 classes; got "
                             f"{known.shape[0]} class ({known.tolist()[:1]!r}).")
        index = np.searchsorted(known, y).clip(0, known.shape[0] - 1)
        unseen = known[index] != y
        if unseen.any():
            raise ValueError(f"{where}: y holds labels {np.unique(y[unseen]).tolist()[:5]} "
                             f"that are not among the classes {known.tolist()[:10]} given "
                             f"to the first partial_fit call.")
        return index.astype(np.int64), known.shape[0], {"classes_": known}

    def _fit_kwargs(self, target_attrs, incremental):
        """class_weight keyed by the classes' indices, as ``Sequential.fit`` takes it."""
        cw = self.class_weight
        if cw is None or isinstance(cw, str):
            if incremental and cw is not None:
                raise ValueError(
                    f"{self._where}: class_weight={cw!r} needs the counts of all of y, "
                    f"which partial_fit never sees; pass a dict, e.g. from sklearn.utils."
                    f"class_weight.compute_class_weight('balanced', classes=..., y=...).")
            return {"class_weight": cw}
        if not isinstance(cw, dict):
            raise TypeError(f"{self._where}: class_weight must be a dict {{label: weight}}, "
                            f"'balanced' or None; got {cw!r}.")
        classes = target_attrs["classes_"]
        index = {label: i for i, label in enumerate(classes.tolist())}
        unknown = [label for label in cw if label not in index]
        if unknown:
            raise ValueError(f"{self._where}: class_weight names labels {unknown[:5]} that "
                             f"are not among the classes of y {classes.tolist()[:10]}.")
        return {"class_weight": {index[label]: weight for label, weight in cw.items()}}

    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (n_samples, n_features; dense or scipy.sparse) and labels
        ``y``; a new network, unless ``warm_start`` continues the last one.

        ``sample_weight`` (n_samples,) weighs each row's loss (times ``class_weight``),
        the held-out loss of ``early_stopping`` included. Returns ``self``.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch of training over the rows given (mini-batches of ``batch_size``,
        shuffled), continuing the network of the earlier calls; the first call builds
        it and needs ``classes``, every label y may hold. Returns ``self``."""
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    # -- predict -------------------------------------------------------------------

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_``
        order, as float64 rows that sum to 1."""
        proba = self._output(X)
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


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = f"""A multi-layer perceptron regressor trained by nn's Numba kernels.

    Builds a ``Sequential`` of ``Dense`` hidden layers (optionally with ``BatchNorm``
    and ``Dropout``) and a linear output with one unit per target, trains it with
    ``MeanSquaredError`` by mini-batch gradient descent, and exposes it through the
    scikit-learn estimator API. ``score`` is the coefficient of determination R^2.
    ``loss_`` is the mean squared error over rows and targets (scikit-learn's
    MLPRegressor reports half of it).
    Targets are not scaled: standardize y beforehand when its scale is far from 1
    (``sklearn.compose.TransformedTargetRegressor``).

    Hyperparameters are stored unchanged by ``__init__`` and checked by ``fit``.

    Parameters
    ----------{_PARAMETERS.format(linear="linear least squares", held_out="shuffled",
                                   outputs="targets")}
    Attributes
    ----------
    n_outputs_ : int
        The number of targets (columns of y). ``predict`` returns shape (n_samples,)
        when it is 1, whether y was (n,) or (n, 1), as scikit-learn's MLPRegressor
        does, else (n_samples, n_outputs_).{_ATTRIBUTES.format(
        model_output="the predictions, one column per target",
        loss="mean squared error")}
    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.model_selection import train_test_split
    >>> X, y = load_diabetes(return_X_y=True)
    >>> Xtr, Xte, ytr, yte = train_test_split(X, y / y.std(), random_state=0)
    >>> reg = MLPRegressor((32,), learning_rate=0.003, batch_size=32, l2=3.0,
    ...                    standardize=True, random_state=0)
    >>> bool(reg.fit(Xtr, ytr).score(Xte, yte) > 0.3)   # R^2; Ridge gets 0.36 here
    True
    >>> reg.predict(Xte).shape
    (111,)
    """

    _loss_type = MeanSquaredError
    _y_checks = {"multi_output": True, "y_numeric": True}

    def _targets(self, y, classes, *, incremental, resume):
        """y as a 2-D float array (one column per target), its columns, ``n_outputs_``."""
        T = y.reshape(-1, 1) if y.ndim == 1 else y
        if incremental and resume and T.shape[1] != self.n_outputs_:
            raise ValueError(f"{self._where}: y has {T.shape[1]} targets; the first "
                             f"partial_fit call had {self.n_outputs_}.")
        return T, T.shape[1], {"n_outputs_": T.shape[1]}

    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (n_samples, n_features; dense or scipy.sparse) and targets
        ``y`` (n_samples,) or (n_samples, n_targets); a new network, unless
        ``warm_start`` continues the last one.

        ``sample_weight`` (n_samples,) weighs each row's squared error, the held-out
        loss of ``early_stopping`` included. Returns ``self``.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch of training over the rows given (mini-batches of ``batch_size``,
        shuffled), continuing the network of the earlier calls. Returns ``self``."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """The predicted targets, float64: (n_samples,) for one target, else
        (n_samples, n_outputs_)."""
        out = self._output(X)
        return out.ravel() if out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self):
        return {**super()._more_tags(), "multioutput": True}
