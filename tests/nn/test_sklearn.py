"""nn.sklearn.MLPClassifier and MLPRegressor: scikit-learn's estimator checks (sparse
input included), pipelines, cross-validation, parameters, labels and targets, early
stopping, partial_fit, warm_start, the layers built, reproducibility and pickling."""
import importlib
import importlib.util
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sparse

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.metrics import r2_score  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils import get_tags  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import nn  # noqa: E402
from nn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]

#: Small, fast settings: every check fits in milliseconds. A learning rate of 0.01
#: with 16-row batches lets 20 epochs reach the accuracy check_classifiers_train asks
#: for (> 0.83) on its blobs.
FAST = dict(hidden_layer_sizes=(8,), epochs=20, learning_rate=0.01, batch_size=16)
#: check_regressors_train asks for R^2 > 0.5 on its 200-row problem.
FAST_REG = dict(hidden_layer_sizes=(16,), epochs=50, learning_rate=0.01, batch_size=16)

#: Expected failures of scikit-learn's checks, by check name, with the reason. None:
#: every check that applies passes. (Two are skipped by scikit-learn itself when their
#: dependency is absent: check_array_api_input without SCIPY_ARRAY_API set and an array
#: API library, check_classifier_data_not_an_array without pandas.)
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data":
        "shuffled mini-batches: a row of weight 2 is not the row twice in other batches "
        "(scikit-learn's own SGD-trained estimators fail it too); tests/nn/test_weights.py "
        "checks the equivalence with full-batch steps",
    "check_sample_weight_equivalence_on_sparse_data":
        "the same, with a sparse X",
}

#: The momentum configuration learns slowly: 20 epochs (80 steps at lr 0.01) leave the
#: 3-class blobs of check_class_weight_classifiers at 64% class-0 predictions. The check
#: raises ``max_iter``, which this estimator calls ``epochs``; with epochs=100 it
#: predicts class 0 for every test row (test_class_weight_turns_predictions).
SLOW_TO_CONVERGE = {
    "check_class_weight_classifiers": "20 epochs of momentum SGD do not converge; the "
                                      "check raises max_iter, not epochs",
}

#: A float32 row predicted alone and in a batch of 20 may round 1 ulp apart (the GEMMs
#: differ), 1.2e-7 relative at outputs near 1: above the check's rtol of 1e-7 on a
#: regressor's unbounded outputs (probabilities, below 1, stay within its atol of 1e-7).
#: test_regressor_predicts_rows_alone_as_in_a_batch checks it at float32's tolerance.
FLOAT32_ROUNDING = {
    "check_methods_subset_invariance": "float32 GEMMs of 1 and 20 rows round 1 ulp apart",
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
        MLPRegressor(**FAST_REG),
        MLPRegressor(**FAST_REG, batch_norm=True, keep_prob=0.9, activation="tanh",
                     optimizer="rmsprop"),
        MLPRegressor(**FAST_REG, early_stopping=True, patience=5, standardize=True,
                     dtype="float64"),
    ],
    expected_failed_checks=lambda est: {
        **EXPECTED_FAILED_CHECKS,
        **(SLOW_TO_CONVERGE if est.optimizer == "momentum" else {}),
        **(FLOAT32_ROUNDING if isinstance(est, MLPRegressor) and est.dtype == "float32"
           else {})},
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_the_sparse_checks_ran():
    """parametrize_with_checks runs the sparse-input checks only for estimators whose
    tag says they take sparse X: every configuration but standardize=True."""
    assert get_tags(MLPClassifier(**FAST)).input_tags.sparse
    assert get_tags(MLPRegressor(**FAST_REG)).input_tags.sparse
    assert not get_tags(MLPRegressor(standardize=True)).input_tags.sparse


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
                  patience=4, tol=1e-3, standardize=True, warm_start=True, dtype="float64",
                  precision="bf16", random_state=3, verbose=0, class_weight={0: 2.0})
    est = MLPClassifier(**params)
    assert est.get_params() == params
    default = MLPClassifier()
    assert default.set_params(**params) is default
    assert default.get_params() == params
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(dropout=0.5)
    # the regressor takes the same ones but class_weight
    del params["class_weight"]
    reg = MLPRegressor(**params)
    assert reg.get_params() == params and clone(reg).get_params() == params


def test_defaults_mirror_sklearn_mlp():
    p = MLPClassifier().get_params()
    assert p["hidden_layer_sizes"] == (100,) and p["activation"] == "relu"
    assert p["optimizer"] == "adam" and p["learning_rate"] == 1e-3
    assert p["batch_size"] == "auto" and p["epochs"] == 200
    assert p["early_stopping"] is False and p["validation_fraction"] == 0.1
    assert p["random_state"] is None and p["warm_start"] is False
    assert p["precision"] == "fp32"
    assert MLPRegressor().get_params() == {k: v for k, v in p.items() if k != "class_weight"}


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
    (dict(precision="fp16"), ValueError, "unknown precision 'fp16'"),
    (dict(precision="bf16", dtype="float64"), ValueError, "precision='bf16' needs dtype"),
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


# -- MLPRegressor ----------------------------------------------------------------------------

@pytest.fixture
def waves():
    """A smooth two-target function of 3 features: y0 = sin(x0) + x1 x2, y1 = x0 - x2^2."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1.5, 1.5, (300, 3))
    Y = np.column_stack([np.sin(X[:, 0]) + X[:, 1] * X[:, 2], X[:, 0] - X[:, 2] ** 2])
    return X, Y


REG = dict(hidden_layer_sizes=(32,), learning_rate=0.01, batch_size=32, epochs=150,
           random_state=0)


def test_regressor_learns_a_nonlinear_function_and_scores_r2(waves):
    X, Y = waves
    est = MLPRegressor(**REG).fit(X[:200], Y[:200, 0])
    pred = est.predict(X[200:])
    assert pred.shape == (100,) and pred.dtype == np.float64
    assert est.score(X[200:], Y[200:, 0]) == pytest.approx(r2_score(Y[200:, 0], pred))
    assert est.score(X[200:], Y[200:, 0]) > 0.95
    assert est.n_outputs_ == 1 and isinstance(est.model_.loss, nn.MeanSquaredError)
    # loss_ is the mean squared error of the last epoch, without scikit-learn's 1/2
    assert est.loss_ == pytest.approx(np.mean((est.predict(X[:200]) - Y[:200, 0]) ** 2),
                                      rel=0.5)


def test_regressor_output_shapes_follow_sklearn(waves):
    """(n,) and (n, 1) targets predict (n,), as scikit-learn's MLPRegressor does; (n, k)
    predicts (n, k); both give the same network and numbers."""
    X, Y = waves
    one = MLPRegressor(**REG).fit(X, Y[:, 0])
    column = MLPRegressor(**REG).fit(X, Y[:, :1])
    np.testing.assert_array_equal(one.predict(X), column.predict(X))
    assert column.predict(X).shape == (300,) and column.n_outputs_ == 1
    two = MLPRegressor(**REG).fit(X[:200], Y[:200])
    assert two.n_outputs_ == 2 and two.model_.n_outputs == 2
    pred = two.predict(X[200:])
    assert pred.shape == (100, 2) and pred.dtype == np.float64
    assert two.score(X[200:], Y[200:]) == pytest.approx(r2_score(Y[200:], pred))
    assert r2_score(Y[200:], pred, multioutput="raw_values").min() > 0.9


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-6), ("float64", 1e-13)])
def test_regressor_predicts_rows_alone_as_in_a_batch(waves, dtype, rtol):
    X, Y = waves
    est = MLPRegressor(**{**REG, "epochs": 5}, batch_norm=True, dtype=dtype).fit(X, Y)
    alone = np.vstack([est.predict(X[i:i + 1]) for i in range(20)])
    np.testing.assert_allclose(alone, est.predict(X[:20]), rtol=rtol, atol=rtol)


def test_regressor_layers_and_linear_model(waves):
    X, Y = waves
    est = MLPRegressor((6,), activation="tanh", epochs=1, random_state=0).fit(X, Y)
    assert _layer_summary(est.model_) == [("Dense", 3, 6, "tanh", "xavier", True),
                                          ("Dense", 6, 2, "identity", "xavier", True)]
    # no hidden layer: least squares by gradient descent reaches the linear fit's R^2
    Xl = X[:, :2]
    y = Xl @ np.array([2.0, -1.0]) + 0.5
    lin = MLPRegressor((), learning_rate=0.05, batch_size=32, epochs=300,
                       random_state=0).fit(Xl, y)
    assert _layer_summary(lin.model_) == [("Dense", 2, 1, "identity", "xavier", True)]
    np.testing.assert_allclose(lin.model_.layers[0].W.ravel(), [2.0, -1.0], atol=1e-3)
    np.testing.assert_allclose(lin.model_.layers[0].b, [0.5], atol=1e-3)


def test_regressor_integer_and_list_targets(waves):
    X, _ = waves
    y = np.round(X[:, 0] * 3).astype(np.int64)
    a = MLPRegressor(**{**REG, "epochs": 3}).fit(X, y)
    b = MLPRegressor(**{**REG, "epochs": 3}).fit(X.tolist(), y.astype(float).tolist())
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_regressor_sample_weight_and_early_stopping(waves):
    X, Y = waves
    w = np.ones(len(X))
    w[::2] = 0.0     # only the odd rows count
    weighted = MLPRegressor(**{**REG, "epochs": 5}).fit(X, Y[:, 0], sample_weight=w)
    plain = MLPRegressor(**{**REG, "epochs": 5}).fit(X, Y[:, 0])
    assert not np.array_equal(weighted.predict(X), plain.predict(X))
    est = MLPRegressor(**{**REG, "epochs": 500}, early_stopping=True, patience=5,
                       validation_fraction=0.2).fit(X, Y)
    assert est.n_iter_ < 500 and est.stop_reason_.startswith("EarlyStopping: dev_loss")
    assert est.best_validation_loss_ == min(est.validation_loss_curve_)


def test_regressor_in_a_pipeline_with_cross_validation():
    from sklearn.datasets import load_diabetes
    X, y = load_diabetes(return_X_y=True)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", MLPRegressor((16,), learning_rate=0.003, batch_size=32, l2=3.0,
                                          random_state=0))])
    scores = cross_val_score(pipe, X, y / y.std(), cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.35, scores


def test_regressor_random_state_reproduces_and_pickles(waves):
    X, Y = waves
    fits = [MLPRegressor(**{**REG, "epochs": 5, "random_state": rs}, keep_prob=0.8).fit(X, Y)
            for rs in (4, 4, 5)]
    a, b, c = (f.predict(X) for f in fits)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    again = pickle.loads(pickle.dumps(fits[0]))
    np.testing.assert_array_equal(again.predict(X), a)
    again.set_params(warm_start=True, epochs=1).fit(X, Y)     # the copy trains on
    assert again.n_iter_ == 6 and not np.array_equal(again.predict(X), a)


def test_regressor_rejects_bad_targets(waves):
    X, Y = waves
    with pytest.raises(ValueError, match="NaN|nan"):
        MLPRegressor(**REG).fit(X, np.where(Y[:, 0] > 0, np.nan, 1.0))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        MLPRegressor(**REG).fit(X, Y[:-1])


# -- partial_fit -----------------------------------------------------------------------------

def _fit_and_partial_fits(est, X, y, n, **partial):
    """``est`` fitted for n epochs, and a clone after n partial_fit calls on the same rows."""
    full = clone(est).set_params(epochs=n, patience=n + 1).fit(X, y)
    steps = clone(est).set_params(patience=n + 1)
    for _ in range(n):
        steps.partial_fit(X, y, **partial)
    return full, steps


@pytest.mark.parametrize("extra", [{}, dict(batch_norm=True, keep_prob=0.7, standardize=True,
                                            optimizer="rmsprop")])
def test_partial_fits_are_epochs_of_fit(blobs3, waves, extra):
    """n partial_fit calls on the rows of a fit with epochs=n give the same bits: the
    optimizer state, the epoch count (shuffling, dropout masks) and the standardizer
    carry over from call to call."""
    X, y = blobs3
    full, steps = _fit_and_partial_fits(MLPClassifier(**FAST, **extra, random_state=0),
                                        X, y, 3, classes=[0, 1, 2])
    np.testing.assert_array_equal(steps.predict_proba(X), full.predict_proba(X))
    assert steps.n_iter_ == full.n_iter_ == 3 and steps.loss_curve_ == full.loss_curve_
    assert len(steps.history_.epochs) == 1
    X, Y = waves
    full, steps = _fit_and_partial_fits(MLPRegressor(**REG, **extra), X, Y, 3)
    np.testing.assert_array_equal(steps.predict(X), full.predict(X))
    assert steps.loss_curve_ == full.loss_curve_


def test_partial_fit_on_chunks_learns(digits):
    X, y = digits.X / 16, digits.y
    clf = MLPClassifier((32,), learning_rate=0.01, random_state=0)
    for _ in range(5):
        for rows in np.array_split(np.arange(len(y)), 6):
            clf.partial_fit(X[rows], y[rows], classes=np.arange(10))
    assert clf.n_iter_ == 30 and len(clf.loss_curve_) == 30
    assert clf.score(X, y) > 0.9
    # one chunk may lack classes: the output keeps all ten
    few = np.flatnonzero(y < 3)
    clf.partial_fit(X[few], y[few])
    assert clf.predict_proba(X).shape == (len(y), 10)


def test_partial_fit_classes(blobs3):
    X, y = blobs3
    with pytest.raises(ValueError, match="first call to partial_fit needs classes="):
        MLPClassifier(**FAST).partial_fit(X, y)
    clf = MLPClassifier(**FAST, random_state=0).partial_fit(X[y < 2], y[y < 2],
                                                            classes=[2, 0, 1])
    assert clf.classes_.tolist() == [0, 1, 2] and clf.model_.n_outputs == 3
    clf.partial_fit(X, y)                          # classes= may be left out later
    clf.partial_fit(X, y, classes=[0, 1, 2])       # or repeated
    with pytest.raises(ValueError, match=r"labels \[5\] that are not among the classes"):
        clf.partial_fit(X, np.where(y == 2, 5, y))
    with pytest.raises(ValueError, match=r"classes=\[0, 1, 2, 3\] differs"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"labels \[7\] that are not among"):
        MLPClassifier(**FAST).partial_fit(X, np.where(y == 2, 7, y), classes=[0, 1, 2])
    with pytest.raises(ValueError, match="at least 2 classes"):
        MLPClassifier(**FAST).partial_fit(X, np.zeros(len(X), int), classes=[0])
    with pytest.raises(ValueError, match="class_weight='balanced' needs the counts"):
        MLPClassifier(**FAST, class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])
    assert clf.n_iter_ == 3


def test_partial_fit_checks_features_targets_and_layers(blobs3, waves):
    X, y = blobs3
    clf = MLPClassifier(**FAST, random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="4 features"):
        clf.partial_fit(X[:, :3], y)
    clf.set_params(hidden_layer_sizes=(5,))
    with pytest.raises(ValueError, match="Call fit to start a new network"):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 1
    Xr, Y = waves
    reg = MLPRegressor(**REG).partial_fit(Xr, Y)
    with pytest.raises(ValueError, match="y has 1 targets; the first partial_fit call had 2"):
        reg.partial_fit(Xr, Y[:, 0])


def test_partial_fit_continues_a_fit_and_fit_starts_over(blobs3):
    X, y = blobs3
    clf = MLPClassifier(**FAST, random_state=0).fit(X, y)
    n, step = clf.n_iter_, clf.model_.optimizer.state.step
    model = clf.model_
    clf.partial_fit(X, y)                       # the classes of the fit are kept
    assert clf.model_ is model and clf.n_iter_ == n + 1
    assert clf.model_.optimizer.state.step == step + -(-len(X) // 16)
    clf.fit(X, y)                               # warm_start=False: a new network
    assert clf.model_ is not model and clf.n_iter_ == n


# -- warm_start ------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [{}, dict(batch_norm=True, keep_prob=0.7, standardize=True,
                                            optimizer="momentum")])
def test_warm_start_continues_weights_and_optimizer_state(blobs3, waves, extra):
    """fit(epochs=2) then a warm fit(epochs=3) is fit(epochs=5), bit for bit."""
    X, y = blobs3
    for make, Xs, ys, out in [
            (lambda **kw: MLPClassifier(**{**FAST, **extra, **kw}), X, y, "predict_proba"),
            (lambda **kw: MLPRegressor(**{**REG, **extra, **kw}), *waves, "predict")]:
        once = make(epochs=5, patience=10, random_state=0).fit(Xs, ys)
        warm = make(epochs=2, patience=10, random_state=0, warm_start=True).fit(Xs, ys)
        model = warm.model_
        warm.set_params(epochs=3).fit(Xs, ys)
        assert warm.model_ is model and warm.n_iter_ == 5
        np.testing.assert_array_equal(getattr(warm, out)(Xs), getattr(once, out)(Xs))
        assert warm.loss_curve_ == once.loss_curve_
        assert warm.model_.optimizer.state.step == once.model_.optimizer.state.step


def test_warm_start_starts_afresh_when_the_network_would_change(blobs3):
    X, y = blobs3
    clf = MLPClassifier(**FAST, warm_start=True, random_state=0).fit(X, y)
    model = clf.model_
    clf.set_params(hidden_layer_sizes=(5,)).fit(X, y)
    assert clf.model_ is not model and clf.n_iter_ == 20
    model = clf.model_
    clf.fit(X[:, :3], y)                                  # other features
    assert clf.model_ is not model and clf.n_features_in_ == 3
    model = clf.model_
    clf.set_params(optimizer="sgd").fit(X[:, :3], y)      # other optimizer: fresh state
    assert clf.model_ is model and isinstance(model.optimizer, nn.SGD)
    with pytest.raises(ValueError, match="warm_start=True continues a fit on the classes"):
        clf.fit(X[:, :3], np.array([0, 1, 5])[y])


def test_warm_start_keeps_the_new_learning_rate(blobs3):
    X, y = blobs3
    clf = MLPClassifier(**FAST, warm_start=True, random_state=0).fit(X, y)
    state = clf.model_.optimizer.state
    clf.set_params(learning_rate=0.001, epochs=1).fit(X, y)
    assert clf.model_.optimizer.lr == 0.001
    assert clf.model_.optimizer.state.step == state.step + -(-len(X) // 16)


# -- sparse input ----------------------------------------------------------------------------

@pytest.fixture
def sparse_problem():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((120, 30)) * (rng.random((120, 30)) < 0.2)
    y = (X[:, :3].sum(axis=1) > 0).astype(np.int64)
    return X, y


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_x_reaches_the_model_sparse(monkeypatch, sparse_problem, fmt):
    """A scipy.sparse X of any format trains and predicts as the dense X does (to the
    rounding of other kernels) and reaches Sequential.fit and predict as CSR, never as a
    dense array."""
    X, y = sparse_problem
    seen = []
    for name in ("fit", "predict"):
        original = getattr(nn.Sequential, name)

        def spy(model, X, *args, _original=original, **kwargs):
            seen.append(sparse.issparse(X) and X.format == "csr")
            return _original(model, X, *args, **kwargs)
        monkeypatch.setattr(nn.Sequential, name, spy)
    Xs = sparse.csr_matrix(X).asformat(fmt)
    for est in (MLPClassifier(**FAST, dtype="float64", random_state=0),
                MLPRegressor(**FAST_REG, dtype="float64", random_state=0)):
        out = "predict_proba" if hasattr(est, "predict_proba") else "predict"
        on_sparse = getattr(clone(est).fit(Xs, y), out)(Xs)
        seen_sparse, seen[:] = list(seen), []
        on_dense = getattr(clone(est).fit(X, y), out)(X)
        assert seen_sparse == [True, True] and seen == [False, False]
        seen.clear()
        np.testing.assert_allclose(on_sparse, on_dense, rtol=1e-9, atol=1e-12)


def test_sparse_early_stopping_and_partial_fit(sparse_problem):
    X, y = sparse_problem
    Xs = sparse.csr_matrix(X)
    clf = MLPClassifier(**FAST, early_stopping=True, random_state=0).fit(Xs, y)
    assert clf.validation_loss_curve_ is not None
    clf = MLPClassifier(**FAST, random_state=0).partial_fit(Xs.tocoo(), y, classes=[0, 1])
    clf.partial_fit(Xs[:50], y[:50])
    assert clf.n_iter_ == 2 and clf.predict(Xs.tocsc()).shape == (120,)


def test_sparse_with_standardize_is_a_clear_error(sparse_problem):
    X, y = sparse_problem
    with pytest.raises(ValueError, match="X is sparse and standardize=True"):
        MLPRegressor(**FAST_REG, standardize=True).fit(sparse.csr_matrix(X), y)
    est = MLPRegressor(**FAST_REG, standardize=True, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="X is sparse and standardize=True"):
        est.predict(sparse.csr_matrix(X))


# -- examples/regression.py ------------------------------------------------------------------

def test_regression_example_prints_r2_against_baselines(capsys):
    spec = importlib.util.spec_from_file_location("example_regression",
                                                  ROOT / "examples" / "regression.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main(epochs=40)
    out = capsys.readouterr().out
    assert [name for name, *_ in rows] == list(module.MODELS)
    for name, r2 in rows:
        assert name in out and f"{r2:.3f}" in out
        assert 0.25 < r2 < 0.6, (name, r2)   # Ridge: 0.358 on this split


# -- precision ---------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:.*precision='bf16', but this CPU:RuntimeWarning")
@pytest.mark.parametrize("make", [lambda **kw: MLPClassifier(**FAST, **kw),
                                  lambda **kw: MLPRegressor(**FAST_REG, **kw)])
def test_precision_reaches_the_model_and_survives_clone(blobs3, make):
    """precision goes to nn.Sequential as it is ("bf16" computes in float32 where the
    CPU has no bfloat16 GEMM; what it computes is tests/nn's business, not this file's)."""
    X, y = blobs3
    assert make().fit(X, y).model_.precision == "fp32"
    est = make(precision="bf16", random_state=0)
    twin = clone(est)
    assert twin.get_params()["precision"] == "bf16"
    assert twin.fit(X, y).model_.precision == "bf16"
    # a changed precision is another network: warm_start starts afresh
    model = twin.model_
    twin.set_params(warm_start=True, precision="fp32").fit(X, y)
    assert twin.model_ is not model and twin.model_.precision == "fp32"


def test_the_estimator_keeps_no_reference_to_the_training_data():
    import gc
    import weakref
    X = np.random.default_rng(0).random((60, 4)).astype(np.float32)
    y = np.arange(60) % 3
    probe = weakref.ref(X)
    est = MLPClassifier((5,), epochs=2, random_state=0, dtype="float32").fit(X, y)
    del X
    gc.collect()
    assert probe() is None
    assert est.history_.final == {"epoch": 2}
