"""nn.sklearn.MLPClassifier: scikit-learn's estimator checks, pipelines, cross-validation,
parameters, labels, early stopping, the layers built, reproducibility and pickling."""
import importlib
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import nn  # noqa: E402
from nn.sklearn import MLPClassifier  # noqa: E402

#: Small, fast settings: every check fits in milliseconds. A learning rate of 0.01
#: with 16-row batches lets 20 epochs reach the accuracy check_classifiers_train asks
#: for (> 0.83) on its blobs.
FAST = dict(hidden_layer_sizes=(8,), epochs=20, learning_rate=0.01, batch_size=16)

#: Expected failures of scikit-learn's checks, by check name, with the reason. None:
#: every check that applies passes. (Two are skipped by scikit-learn itself when their
#: dependency is absent: check_array_api_input without SCIPY_ARRAY_API set and an array
#: API library, check_classifier_data_not_an_array without pandas.)
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data":
        "shuffled mini-batches: a row of weight 2 is not the row twice in other batches "
        "(scikit-learn's own SGD-trained estimators fail it too); tests/nn/test_weights.py "
        "checks the equivalence with full-batch steps",
}

#: The momentum configuration learns slowly: 20 epochs (80 steps at lr 0.01) leave the
#: 3-class blobs of check_class_weight_classifiers at 64% class-0 predictions. The check
#: raises ``max_iter``, which this estimator calls ``epochs``; with epochs=100 it
#: predicts class 0 for every test row (test_class_weight_turns_predictions).
SLOW_TO_CONVERGE = {
    "check_class_weight_classifiers": "20 epochs of momentum SGD do not converge; the "
                                      "check raises max_iter, not epochs",
}

#: Short fits here stop at ``epochs`` before converging, which scikit-learn's way warns
#: about; test_too_few_epochs_warn_about_convergence checks the warning.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@parametrize_with_checks(
    [
        MLPClassifier(**FAST),
        MLPClassifier(**FAST, batch_norm=True, keep_prob=0.8, activation="tanh"),
        MLPClassifier(**FAST, early_stopping=True, patience=3, standardize=True,
                      optimizer="momentum", dtype="float64"),
    ],
    expected_failed_checks=lambda est: {**EXPECTED_FAILED_CHECKS, **(
        SLOW_TO_CONVERGE if est.optimizer == "momentum" else {})},
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# -- the optional dependency -------------------------------------------------------------

def test_import_without_sklearn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn` fail
    monkeypatch.delitem(sys.modules, "nn.sklearn")
    with pytest.raises(ImportError, match=r'pip install "numba-nn\[sklearn\]"'):
        importlib.import_module("nn.sklearn")


def test_import_nn_imports_neither_nn_sklearn_nor_sklearn():
    code = ("import sys, nn; "
            "assert 'nn.sklearn' not in sys.modules and 'sklearn' not in sys.modules")
    root = pathlib.Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
    assert "sklearn" not in nn.__all__


# -- data ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return nn.datasets.load_digits()


@pytest.fixture
def blobs3(make_blobs):
    return make_blobs(n=90, n_features=4, n_classes=3, seed=1)


# -- scikit-learn integration --------------------------------------------------------------

def test_pipeline_with_scaler_cross_val_score_on_digits(digits):
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", MLPClassifier((64,), batch_size=32, epochs=30, random_state=0))])
    scores = cross_val_score(pipe, digits.X, digits.y, cv=3)
    assert scores.shape == (3,)
    assert scores.mean() > 0.9, scores


def test_pipeline_fit_predict_score_and_set_params(digits):
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", MLPClassifier((32,), epochs=15, batch_size=32, random_state=0))])
    pipe.set_params(mlp__learning_rate=3e-3)
    assert pipe.named_steps["mlp"].learning_rate == 3e-3
    pipe.fit(digits.X[:1500], digits.y[:1500])
    assert pipe.score(digits.X[1500:], digits.y[1500:]) > 0.9
    proba = pipe.predict_proba(digits.X[1500:])
    assert proba.shape == (297, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)


def test_get_params_set_params_clone_round_trip():
    params = dict(hidden_layer_sizes=(16, 8), activation="tanh", optimizer="rmsprop",
                  learning_rate=0.02, momentum=0.5, l2=1e-3, keep_prob=0.7, batch_norm=True,
                  batch_size=64, epochs=7, early_stopping=True, validation_fraction=0.2,
                  patience=4, tol=1e-3, standardize=True, dtype="float64", random_state=3,
                  verbose=0, class_weight={0: 2.0})
    est = MLPClassifier(**params)
    assert est.get_params() == params
    default = MLPClassifier()
    assert default.set_params(**params) is default
    assert default.get_params() == params
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(dropout=0.5)


def test_defaults_mirror_sklearn_mlp():
    p = MLPClassifier().get_params()
    assert p["hidden_layer_sizes"] == (100,) and p["activation"] == "relu"
    assert p["optimizer"] == "adam" and p["learning_rate"] == 1e-3
    assert p["batch_size"] == "auto" and p["epochs"] == 200
    assert p["early_stopping"] is False and p["validation_fraction"] == 0.1
    assert p["random_state"] is None


def test_clone_of_fitted_is_unfitted(blobs3):
    X, y = blobs3
    est = MLPClassifier(**FAST, random_state=0).fit(X, y)
    with pytest.raises(NotFittedError):
        clone(est).predict(X)


# -- labels and outputs --------------------------------------------------------------------

def test_string_labels_multiclass(blobs3):
    X, y = blobs3
    names = np.array(["setosa", "versicolor", "virginica"])
    labels = names[y]
    est = MLPClassifier(**FAST, random_state=0).fit(X, labels)
    assert est.classes_.tolist() == names.tolist()
    pred = est.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= set(names)
    assert est.score(X, labels) > 0.9
    proba = est.predict_proba(X)
    assert proba.shape == (90, 3) and proba.dtype == np.float64
    np.testing.assert_array_equal(pred, names[proba.argmax(axis=1)])
    np.testing.assert_allclose(est.predict_log_proba(X), np.log(proba))


def test_binary_labels_two_softmax_outputs(make_blobs):
    X, y = make_blobs(n=60, n_features=3, n_classes=2, seed=2)
    labels = np.where(y == 1, "spam", "ham").astype(object)
    est = MLPClassifier(**FAST, random_state=0).fit(X, labels)
    assert est.classes_.tolist() == ["ham", "spam"]
    assert est.model_.n_outputs == 2
    assert est.predict_proba(X).shape == (60, 2)
    assert est.score(X, labels) > 0.9


def test_non_contiguous_integer_labels(blobs3):
    X, y = blobs3
    labels = np.array([-7, 3, 100])[y]
    est = MLPClassifier(**FAST, random_state=0).fit(X, labels)
    assert est.classes_.tolist() == [-7, 3, 100]
    assert set(est.predict(X)) <= {-7, 3, 100}


def test_one_class_is_an_error(blobs3):
    X, _ = blobs3
    with pytest.raises(ValueError, match="at least 2 classes; got 1 class"):
        MLPClassifier(**FAST).fit(X, np.zeros(len(X), int))


def test_regression_targets_are_rejected(blobs3):
    X, _ = blobs3
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier(**FAST).fit(X, np.linspace(0, 1, len(X)))


def test_predict_checks_feature_count(blobs3):
    X, y = blobs3
    est = MLPClassifier(**FAST, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="4 features"):
        est.predict(X[:, :3])


# -- training: fitted attributes, early stopping, convergence ------------------------------

def test_fitted_attributes(blobs3):
    X, y = blobs3
    est = MLPClassifier(**FAST, random_state=0).fit(X, y)
    assert isinstance(est.model_, nn.Sequential)
    assert isinstance(est.history_, nn.History)
    assert est.n_features_in_ == 4
    assert est.n_iter_ == len(est.loss_curve_) == len(est.history_.epochs)
    assert est.loss_ == est.loss_curve_[-1]
    assert est.batch_size_ == 16
    assert est.validation_loss_curve_ is None and est.best_validation_loss_ is None
    assert isinstance(est.model_.optimizer, nn.Adam)
    assert est.model_.optimizer.lr == 0.01


def test_batch_size_auto_is_min_200_n(blobs3, digits):
    X, y = blobs3
    est = MLPClassifier((4,), epochs=1, random_state=0)
    with pytest.warns(ConvergenceWarning):
        assert est.fit(X, y).batch_size_ == 90
    with pytest.warns(ConvergenceWarning):
        assert est.fit(digits.X[:500] / 16, digits.y[:500]).batch_size_ == 200


def test_early_stopping_stops_early_and_keeps_the_best(digits):
    X, y = digits.X / 16, digits.y
    est = MLPClassifier((32,), learning_rate=0.01, batch_size=32, epochs=500,
                        early_stopping=True, validation_fraction=0.2, patience=3, tol=0.0,
                        random_state=0).fit(X, y)
    assert est.n_iter_ < 500
    assert est.stop_reason_.startswith("EarlyStopping: dev_loss")
    assert len(est.validation_loss_curve_) == est.n_iter_
    assert est.best_validation_loss_ == min(est.validation_loss_curve_)
    # the weights kept are the best epoch's, not the last one's
    best = int(np.argmin(est.validation_loss_curve_))
    assert best <= est.n_iter_ - 1 - 3
    assert est.score(X, y) > 0.95
    # it trained on 80% of the rows: a stratified hold-out of 20%
    assert est.batch_size_ == 32


def test_without_early_stopping_training_loss_plateau_stops(blobs3):
    X, y = blobs3
    est = MLPClassifier((8,), learning_rate=0.05, batch_size=16, epochs=2000, patience=5,
                        tol=1e-3, random_state=0).fit(X, y)
    assert est.n_iter_ < 2000
    assert est.stop_reason_.startswith("EarlyStopping: loss")


def test_too_few_epochs_warn_about_convergence(blobs3):
    X, y = blobs3
    with pytest.warns(ConvergenceWarning, match="maximum epochs=2"):
        est = MLPClassifier(**{**FAST, "epochs": 2}).fit(X, y)
    assert est.n_iter_ == 2 and est.stop_reason_ is None


def test_early_stopping_needs_a_validation_row(blobs3):
    X, y = blobs3
    with pytest.raises(ValueError, match="validation_fraction"):
        MLPClassifier(**FAST, early_stopping=True, validation_fraction=0.001).fit(X, y)


# -- the network built ---------------------------------------------------------------------

def _layer_summary(model):
    out = []
    for layer in model.layers:
        if isinstance(layer, nn.Dense):
            out.append(("Dense", layer.n_in, layer.n_out, layer.activation, layer.init,
                        layer.use_bias))
        elif isinstance(layer, nn.BatchNorm):
            out.append(("BatchNorm",))
        elif isinstance(layer, nn.Activation):
            out.append(("Activation", layer.name))
        elif isinstance(layer, nn.Dropout):
            out.append(("Dropout", layer.keep_prob))
    return out


def test_plain_layers(blobs3):
    X, y = blobs3
    est = MLPClassifier((6, 5), epochs=1, random_state=0).fit(X, y)
    assert _layer_summary(est.model_) == [
        ("Dense", 4, 6, "relu", "he", True),
        ("Dense", 6, 5, "relu", "he", True),
        ("Dense", 5, 3, "identity", "xavier", True),
    ]
    assert est.model_.dtype == np.float32


def test_batch_norm_and_dropout_layers(blobs3):
    X, y = blobs3
    est = MLPClassifier((6, 5), activation="logistic", batch_norm=True, keep_prob=0.5,
                        epochs=1, dtype="float64", random_state=0).fit(X, y)
    assert _layer_summary(est.model_) == [
        ("Dense", 4, 6, "identity", "xavier", False), ("BatchNorm",),
        ("Activation", "sigmoid"), ("Dropout", 0.5),
        ("Dense", 6, 5, "identity", "xavier", False), ("BatchNorm",),
        ("Activation", "sigmoid"), ("Dropout", 0.5),
        ("Dense", 5, 3, "identity", "xavier", True),
    ]
    assert est.model_.dtype == np.float64


def test_no_hidden_layers_is_softmax_regression_and_int_width(blobs3):
    X, y = blobs3
    est = MLPClassifier((), epochs=1, random_state=0).fit(X, y)
    assert _layer_summary(est.model_) == [("Dense", 4, 3, "identity", "xavier", True)]
    est = MLPClassifier(7, epochs=1, random_state=0).fit(X, y)
    assert _layer_summary(est.model_)[0] == ("Dense", 4, 7, "relu", "he", True)


@pytest.mark.parametrize("n, batch_size, expected", [(33, 16, 17), (33, 32, 33), (2, 1, 2),
                                                     (41, 20, 21)])
def test_batch_norm_avoids_one_row_batches(make_blobs, n, batch_size, expected):
    X, y = make_blobs(n=n, n_features=3, n_classes=2, seed=0)
    est = MLPClassifier((4,), batch_norm=True, batch_size=batch_size, epochs=2,
                        random_state=0).fit(X, y)
    assert est.batch_size_ == expected
    assert n % est.batch_size_ != 1


def test_standardize_puts_a_standardizer_on_the_model(blobs3):
    X, y = blobs3
    X = X * 1000.0 + 5000.0
    est = MLPClassifier(**FAST, standardize=True, random_state=0).fit(X, y)
    assert isinstance(est.model_.standardizer, nn.data.Standardizer)
    assert est.score(X, y) > 0.9
    assert MLPClassifier(**FAST, random_state=0).fit(X, y).model_.standardizer is None


@pytest.mark.parametrize("optimizer, cls", [("adam", nn.Adam), ("sgd", nn.SGD),
                                            ("momentum", nn.Momentum),
                                            ("rmsprop", nn.RMSprop)])
def test_optimizers(blobs3, optimizer, cls):
    X, y = blobs3
    est = MLPClassifier((8,), optimizer=optimizer, learning_rate=0.05, momentum=0.8,
                        batch_size=16, epochs=30, random_state=0).fit(X, y)
    assert type(est.model_.optimizer) is cls
    if optimizer == "momentum":
        assert est.model_.optimizer.beta == 0.8
    assert est.score(X, y) > 0.9


@pytest.mark.parametrize("params, error, match", [
    (dict(optimizer="lbfgs"), ValueError, "unknown optimizer"),
    (dict(activation="softplus"), ValueError, "unknown activation"),
    (dict(learning_rate=0.0), ValueError, "learning_rate must be > 0"),
    (dict(l2=-1.0), ValueError, "l2 must be >= 0"),
    (dict(keep_prob=0.0), ValueError, "keep_prob must be in \\(0, 1\\]; got 0"),
    (dict(keep_prob=1.5), ValueError, "keep_prob must be in \\(0, 1\\]; got 1.5"),
    (dict(batch_size="big"), TypeError, "batch_size must be an integer"),
    (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
    (dict(epochs=0), ValueError, "epochs must be >= 1"),
    (dict(hidden_layer_sizes=(8, 0)), ValueError, "hidden_layer_sizes"),
    (dict(hidden_layer_sizes="8"), TypeError, "hidden_layer_sizes"),
    (dict(batch_norm=1), TypeError, "batch_norm must be True or False"),
    (dict(early_stopping=True, validation_fraction=1.0), ValueError, "validation_fraction"),
    (dict(patience=0), ValueError, "patience must be >= 1"),
    (dict(tol=-1.0), ValueError, "tol must be >= 0"),
    (dict(dtype="float16"), TypeError, "dtype must be float32 or float64"),
    (dict(optimizer="momentum", momentum=1.0), ValueError, "momentum must be < 1"),
])
def test_bad_hyperparameters_raise_in_fit_not_init(blobs3, params, error, match):
    X, y = blobs3
    est = MLPClassifier(**{**FAST, **params})   # __init__ stores, never checks
    with pytest.raises(error, match=match):
        est.fit(X, y)
    assert not hasattr(est, "model_")


# -- reproducibility and pickling ----------------------------------------------------------

@pytest.mark.parametrize("extra", [{}, dict(batch_norm=True, keep_prob=0.7,
                                            early_stopping=True)])
def test_fixed_random_state_reproduces_the_fit(digits, extra):
    X, y = digits.X[:400] / 16, digits.y[:400]
    fits = [MLPClassifier((16,), epochs=5, batch_size=32, random_state=rs, **extra).fit(X, y)
            for rs in (7, 7, 8)]
    a, b, c = (f.predict_proba(X) for f in fits)
    np.testing.assert_array_equal(a, b)
    assert fits[0].loss_curve_ == fits[1].loss_curve_
    assert not np.array_equal(a, c)
    # a RandomState instance works too, and is consumed like in scikit-learn
    rng = np.random.RandomState(7)
    est = MLPClassifier((16,), epochs=5, batch_size=32, random_state=rng, **extra)
    p1 = est.fit(X, y).predict_proba(X)
    p2 = est.fit(X, y).predict_proba(X)
    assert not np.array_equal(p1, p2)


def test_pickle_round_trip_gives_a_trainable_model(blobs3):
    X, y = blobs3
    est = MLPClassifier(**FAST, batch_norm=True, keep_prob=0.8, standardize=True,
                        random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    assert isinstance(est.model_, nn.Sequential)          # the original is untouched
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))
    model = again.model_
    # the layers' weights are views of the flat parameter buffer again
    assert all(np.shares_memory(layer.W, model.params)
               for layer in model.layers if isinstance(layer, nn.Dense))
    assert model.standardizer is not None
    before = model.params.copy()
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=model.optimizer, epochs=1,
              batch_size=16, verbose=0)
    assert not np.array_equal(model.params, before)
    assert not np.array_equal(again.predict_proba(X), est.predict_proba(X))


def test_class_weight_turns_predictions():
    """check_class_weight_classifiers's problem with epochs=100: classes 1 and 2 weigh
    1e-7 of class 0, so every test row is predicted as class 0; unweighted, not."""
    from sklearn.datasets import make_blobs
    from sklearn.model_selection import train_test_split
    X, y = make_blobs(centers=3, random_state=0, cluster_std=20)
    Xtr, Xte, ytr, _ = train_test_split(X, y, test_size=0.5, random_state=0)
    params = dict(hidden_layer_sizes=(8,), epochs=100, learning_rate=0.01, batch_size=16,
                  early_stopping=True, patience=20, standardize=True, optimizer="momentum",
                  dtype="float64", random_state=0)
    weighted = MLPClassifier(**params, class_weight={0: 1000, 1: 1e-4, 2: 1e-4})
    assert np.mean(weighted.fit(Xtr, ytr).predict(Xte) == 0) == 1.0
    assert np.mean(MLPClassifier(**params).fit(Xtr, ytr).predict(Xte) == 0) < 0.6
    # sample_weight enters the same way, and labels key class_weight
    w = np.where(ytr == 0, 1000, 1e-4)
    by_row = MLPClassifier(**params).fit(Xtr, ytr, sample_weight=w)
    np.testing.assert_array_equal(by_row.predict_proba(Xte), weighted.predict_proba(Xte))
    with pytest.raises(ValueError, match=r"class_weight names labels \[7\]"):
        MLPClassifier(**params, class_weight={7: 1.0}).fit(Xtr, ytr)
